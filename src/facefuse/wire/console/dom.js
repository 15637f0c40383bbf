// Small DOM helpers shared by the console's pages: building elements, drop zones, the confirm
// dialog and a template's faces drawn over its picture.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

// A file chosen in `input` or dropped on `zone` goes to onFile(file).
export function dropZone(zone, input, onFile) {
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) onFile(input.files[0]);
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) onFile(file);
  });
}

// Ask before something that cannot be undone; resolves true when confirmed.
export function confirmAction(message, actionLabel) {
  const dialog = $("#confirm");
  $("#confirm-message").textContent = message;
  $("#confirm-ok").textContent = actionLabel;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-cancel").focus(); // the safe choice first
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// Boxes with their template_face_index over a template picture. With onPick they are buttons
// (one pressed at a time; pressing it again picks none: the service's default, the largest).
export function drawFaces(figure, template, onPick) {
  for (const old of figure.querySelectorAll(".face")) old.remove();
  template.face_boxes.forEach((box, index) => {
    const label = `Template face ${index}`;
    const mark = onPick
      ? el("button", { type: "button", className: "face", "aria-pressed": "false", "aria-label": label, title: label })
      : el("span", { className: "face", role: "img", "aria-label": label });
    mark.append(el("span", { className: "face-index", text: String(index) }));
    mark.style.left = `${(100 * box.x) / template.width}%`;
    mark.style.top = `${(100 * box.y) / template.height}%`;
    mark.style.width = `${(100 * box.width) / template.width}%`;
    mark.style.height = `${(100 * box.height) / template.height}%`;
    if (onPick) {
      mark.addEventListener("click", () => {
        const chosen = mark.getAttribute("aria-pressed") !== "true";
        for (const other of figure.querySelectorAll(".face")) other.setAttribute("aria-pressed", "false");
        mark.setAttribute("aria-pressed", String(chosen));
        onPick(chosen ? index : null);
      });
    }
    figure.append(mark);
  });
}

// Object URLs made for a page, revoked together when it shows something else.
export class UrlBag {
  constructor() {
    this.urls = new Set();
  }

  add(url) {
    this.urls.add(url);
    return url;
  }

  revokeAll() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls.clear();
  }
}
