// The Try page: a template (from the gallery, or a photo of one's own), a selfie (file, drop or
// camera), the two strengths, POST /v3/facefuse, and the result beside the template.

import { base64Of, blobOfBase64, call, thumbnailUrl } from "./api.js";
import { Camera } from "./camera.js";
import { $, drawFaces, dropZone, el, UrlBag } from "./dom.js";
import { clearError, localProblem, showError } from "./errors.js";
import { fitForApi } from "./photos.js";

const DEFAULT_FUSE_DEGREE = 100; // the service's defaults (docs/api.md B.4) when a template has none
const DEFAULT_SHAPE_DEGREE = 40;
const TICK_MS = 1000;
const NO_CAMERA = "This browser offers no camera to this page: it needs https, or an address on this machine.";
const SHRUNK_NOTE = " (over the 2 MB or 4096 px rule: shrunk here to 2048 px before sending)";

export class TryPage {
  constructor() {
    this.urls = new UrlBag(); // gallery thumbnails
    this.workUrls = new UrlBag(); // the chosen photos and the result
    this.template = null; // the catalog template chosen, or null
    this.templatePhoto = null; // an ad-hoc template File, or null
    this.templatePreviewUrl = "";
    this.faceIndex = null;
    this.selfie = null;
    this.camera = new Camera($("#camera-video"));
    this.wire();
  }

  wire() {
    dropZone($("#selfie-drop"), $("#selfie-file"), (file) => this.useSelfie(file));
    dropZone($("#adhoc-drop"), $("#adhoc-file"), (file) => this.useAdhocTemplate(file));
    for (const id of ["fuse-degree", "shape-degree"]) {
      const input = $(`#${id}`);
      input.addEventListener("input", () => ($(`#${id}-value`).textContent = input.value));
    }
    $("#camera-start").addEventListener("click", () => this.startCamera());
    $("#camera-take").addEventListener("click", () => this.takePhoto());
    $("#camera-cancel").addEventListener("click", () => this.stopCamera());
    $("#fuse-button").addEventListener("click", () => this.fuse());
    const range = $("#compare-range");
    range.addEventListener("input", () => this.showSplit(range.value));
    const compare = $("#compare");
    const follow = (event) => {
      const box = compare.getBoundingClientRect();
      range.value = String(Math.round((100 * (event.clientX - box.left)) / box.width));
      this.showSplit(range.value);
    };
    compare.addEventListener("pointerdown", (event) => {
      compare.setPointerCapture(event.pointerId);
      follow(event);
    });
    compare.addEventListener("pointermove", (event) => {
      if (compare.hasPointerCapture(event.pointerId)) follow(event);
    });
  }

  show(templates) {
    this.urls.revokeAll();
    const gallery = $("#gallery");
    gallery.replaceChildren();
    if (!templates.length) gallery.append(el("p", { text: "No templates yet: an admin adds them on the Templates page." }));
    for (const template of templates) {
      const input = el("input", { type: "radio", name: "template", value: template.template_id });
      input.addEventListener("change", () => this.chooseTemplate(template, img.src));
      const img = el("img", { alt: "", width: "96", height: "96" });
      const title = template.name || template.template_id;
      gallery.append(el("label", { className: "tile", title }, input, img, el("span", { text: title })));
      thumbnailUrl(template.template_id)
        .then((url) => {
          img.src = this.urls.add(url);
          if (!this.templatePhoto && this.template && this.template.template_id === template.template_id) {
            this.previewTemplate(url);
          }
        })
        .catch(() => img.classList.add("missing"));
    }
    const keep = this.template && templates.find((t) => t.template_id === this.template.template_id);
    const first = keep || templates[0];
    if (this.templatePhoto) return; // a photo of one's own stays chosen
    if (first) {
      gallery.querySelector(`input[value="${first.template_id}"]`).checked = true;
      this.chooseTemplate(first, "");
    } else {
      this.template = null; // the last one was deleted
      this.previewTemplate("");
    }
  }

  chooseTemplate(template, url) {
    this.template = template;
    this.templatePhoto = null;
    this.faceIndex = null;
    $("#fuse-degree").value = String(template.fuse_degree ?? DEFAULT_FUSE_DEGREE);
    $("#shape-degree").value = String(template.shape_degree ?? DEFAULT_SHAPE_DEGREE);
    for (const id of ["fuse-degree", "shape-degree"]) $(`#${id}-value`).textContent = $(`#${id}`).value;
    $("#adhoc-name").textContent = "";
    this.previewTemplate(url);
  }

  previewTemplate(url) {
    const figure = $("#template-preview");
    const template = this.templatePhoto ? null : this.template;
    $("#template-preview-img").src = url || "";
    this.templatePreviewUrl = url;
    const several = template && template.face_boxes.length > 1;
    figure.hidden = !url || (template && !several); // one face: its gallery tile shows it already
    drawFaces(figure, several ? template : { face_boxes: [] }, (index) => {
      this.faceIndex = index;
      $("#face-hint").textContent =
        index === null ? "The largest face is filled. Click a face to choose another." : `Face ${index} is filled.`;
    });
    $("#face-hint").hidden = !several;
    $("#face-hint").textContent = "The largest face is filled. Click a face to choose another.";
  }

  async useAdhocTemplate(chosen) {
    const { file, shrunk } = await fitForApi(chosen);
    this.templatePhoto = file;
    this.faceIndex = null;
    for (const radio of document.querySelectorAll('#gallery input[name="template"]')) radio.checked = false;
    $("#adhoc-name").textContent = `Using your template photo: ${chosen.name}${shrunk ? SHRUNK_NOTE : ""}`;
    this.previewTemplate(this.workUrls.add(URL.createObjectURL(file)));
  }

  async useSelfie(chosen) {
    const { file, shrunk } = await fitForApi(chosen);
    this.selfie = file;
    const img = $("#selfie-preview");
    img.src = this.workUrls.add(URL.createObjectURL(file));
    img.hidden = false;
    $("#selfie-name").textContent = `${chosen.name}${shrunk ? SHRUNK_NOTE : ""}`;
  }

  async startCamera() {
    clearError($("#try-error"));
    if (!this.camera.available) {
      showError($("#try-error"), localProblem(NO_CAMERA));
      return;
    }
    try {
      $("#camera").hidden = false;
      await this.camera.start();
      $("#camera-take").focus();
    } catch (error) {
      $("#camera").hidden = true;
      showError($("#try-error"), localProblem(`The camera could not start (${error.name}).`));
    }
  }

  async takePhoto() {
    const file = await this.camera.capture();
    this.stopCamera();
    this.useSelfie(file);
  }

  stopCamera() {
    this.camera.stop();
    $("#camera").hidden = true;
  }

  async request() {
    const user = {
      media_data: await base64Of(this.selfie),
      media_profiles: { media_data_type: "jpg" },
    };
    if (this.faceIndex !== null) user.media_extra = { template_face_index: this.faceIndex };
    const parameter = {
      rsp_media_type: "base64",
      fuse_degree: Number($("#fuse-degree").value),
      shape_degree: Number($("#shape-degree").value),
    };
    const media = [user];
    if (this.templatePhoto) {
      media.push({
        media_data: await base64Of(this.templatePhoto),
        media_profiles: { media_data_type: "jpg" },
        media_extra: { role: "template" },
      });
    } else {
      parameter.faceFusePPType = this.template.template_id;
    }
    return { parameter, extra: {}, media_info_list: media };
  }

  async fuse() {
    const errorBox = $("#try-error");
    clearError(errorBox);
    if (!this.template && !this.templatePhoto) {
      showError(errorBox, localProblem("Choose a template first."));
      return;
    }
    if (!this.selfie) {
      showError(errorBox, localProblem("Choose or take your photo first."));
      return;
    }
    const button = $("#fuse-button");
    const started = Date.now();
    const elapsed = $("#progress-seconds");
    elapsed.textContent = "0 s";
    const ticker = setInterval(() => (elapsed.textContent = `${Math.round((Date.now() - started) / 1000)} s`), TICK_MS);
    button.disabled = true;
    $("#progress").hidden = false;
    try {
      const answer = await call("POST", "/v3/facefuse", { body: await this.request() });
      this.showResult(blobOfBase64(answer.media_info_list[0].media_data));
    } catch (error) {
      showError(errorBox, error);
      $("#result").hidden = true;
    } finally {
      clearInterval(ticker);
      button.disabled = false;
      $("#progress").hidden = true;
    }
  }

  showResult(blob) {
    const url = this.workUrls.add(URL.createObjectURL(blob));
    $("#result-before").src = this.templatePreviewUrl;
    $("#result-after").src = url;
    const download = $("#download");
    download.href = url;
    download.download = `facefuse-${new Date().toISOString().replace(/[:.]/g, "-")}.jpg`;
    $("#compare-range").value = "50";
    this.showSplit(50);
    $("#result").hidden = false;
    $("#result").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  // Left of the line: the template as it was; right of it: the result.
  showSplit(percent) {
    $("#result-after").style.clipPath = `inset(0 0 0 ${percent}%)`;
    $("#compare-line").style.left = `${percent}%`;
  }

  reset() {
    this.stopCamera();
    this.urls.revokeAll();
    this.workUrls.revokeAll();
    this.template = null;
    this.templatePhoto = null;
    this.selfie = null;
    $("#result").hidden = true;
    $("#selfie-preview").hidden = true;
    clearError($("#try-error"));
  }
}
