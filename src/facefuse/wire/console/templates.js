// The Templates page (admin keys): upload a photo with a name and default strengths, see each
// template's detected faces with their indices, delete one after confirming.

import { base64Of, call, thumbnailUrl } from "./api.js";
import { $, confirmAction, drawFaces, dropZone, el, UrlBag } from "./dom.js";
import { clearError, localProblem, showError } from "./errors.js";

export class TemplatesPage {
  constructor(onChange) {
    this.onChange = onChange; // the template list changed: the Try page's gallery follows
    this.urls = new UrlBag();
    this.photo = null;
    dropZone($("#upload-drop"), $("#upload-file"), (file) => this.usePhoto(file));
    $("#upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.upload();
    });
  }

  usePhoto(file) {
    this.photo = file;
    $("#upload-file-name").textContent = file.name;
  }

  show(templates) {
    this.urls.revokeAll();
    const list = $("#template-list");
    list.replaceChildren();
    for (const template of templates) list.append(this.card(template));
    $("#template-count").textContent = `${templates.length} template${templates.length === 1 ? "" : "s"}`;
  }

  card(template) {
    const img = el("img", { alt: `Template ${template.name || template.template_id}` });
    const figure = el("figure", { className: "faces" }, img);
    img.addEventListener("load", () => drawFaces(figure, template, null), { once: true });
    thumbnailUrl(template.template_id)
      .then((url) => (img.src = this.urls.add(url)))
      .catch(() => img.classList.add("missing"));
    const remove = el("button", { type: "button", className: "danger", text: "Delete" });
    remove.setAttribute("aria-label", `Delete template ${template.name || template.template_id}`);
    remove.addEventListener("click", () => this.remove(template));
    const defaults = [
      `fuse ${template.fuse_degree ?? "default"}`,
      `shape ${template.shape_degree ?? "default"}`,
    ].join(", ");
    const facts = el(
      "dl",
      {},
      el("dt", { text: "id" }),
      el("dd", {}, el("code", { text: template.template_id })),
      el("dt", { text: "faces" }),
      el("dd", { className: "face-count", text: String(template.faces) }),
      el("dt", { text: "size" }),
      el("dd", { text: `${template.width} × ${template.height}` }),
      el("dt", { text: "strengths" }),
      el("dd", { text: defaults }),
      el("dt", { text: "added" }),
      el("dd", { text: template.created_at.replace("T", " ").replace("Z", " UTC") }),
    );
    const title = el("h3", { text: template.name || "(no name)" });
    return el("li", { className: "card", "data-template": template.template_id }, figure, title, facts, remove);
  }

  async upload() {
    const errorBox = $("#upload-error");
    clearError(errorBox);
    if (!this.photo) {
      showError(errorBox, localProblem("Choose the template photo first."));
      return;
    }
    const parameter = {};
    const name = $("#upload-name").value.trim();
    const templateId = $("#upload-id").value.trim();
    if (name) parameter.name = name;
    if (templateId) parameter.template_id = templateId;
    for (const [field, id] of [
      ["fuse_degree", "#upload-fuse"],
      ["shape_degree", "#upload-shape"],
    ]) {
      if ($(id).value !== "") parameter[field] = Number($(id).value);
    }
    const button = $("#upload-button");
    button.disabled = true;
    $("#upload-progress").hidden = false;
    try {
      const body = {
        parameter,
        media_info_list: [{ media_data: await base64Of(this.photo), media_profiles: { media_data_type: "jpg" } }],
      };
      const added = await call("POST", "/v3/templates", { body });
      $("#upload-form").reset();
      $("#upload-file-name").textContent = "";
      this.photo = null;
      $("#upload-done").textContent = `Added ${added.name || added.template_id}: ${added.faces} face(s) found.`;
      await this.onChange();
    } catch (error) {
      showError(errorBox, error);
    } finally {
      button.disabled = false;
      $("#upload-progress").hidden = true;
    }
  }

  async remove(template) {
    const label = template.name ? `${template.name} (${template.template_id})` : template.template_id;
    const sure = await confirmAction(
      `Delete template ${label}? Requests that name it will then fail with 10011.`,
      "Delete template",
    );
    if (!sure) return;
    try {
      await call("DELETE", `/v3/templates/${encodeURIComponent(template.template_id)}`);
      $("#upload-done").textContent = `Deleted ${label}.`;
      await this.onChange();
    } catch (error) {
      showError($("#upload-error"), error);
    }
  }

  reset() {
    this.urls.revokeAll();
    $("#template-list").replaceChildren();
  }
}
