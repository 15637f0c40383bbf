// The Keys page (admin keys): list, create (the secret is shown once, with a copy button), revoke.

import { call } from "./api.js";
import { $, confirmAction, el } from "./dom.js";
import { clearError, showError } from "./errors.js";

const COLUMNS = ["API key", "Name", "Admin", "QPS", "Daily quota", "Created", "State", ""];

export class KeysPage {
  constructor(signedInKey) {
    this.signedInKey = signedInKey; // () => the api_key in use: it cannot revoke itself
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
    $("#new-key-done").addEventListener("click", () => this.hideSecret());
    for (const button of document.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => this.copy(button));
    }
  }

  async load() {
    try {
      const answer = await call("GET", "/v3/keys");
      this.show(answer.keys);
    } catch (error) {
      showError($("#key-error"), error);
    }
  }

  show(keys) {
    const head = el("tr", {}, ...COLUMNS.map((text) => el("th", { scope: "col", text })));
    const rows = keys.map((key) => this.row(key));
    $("#key-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  row(key) {
    const cells = [
      el("code", { text: key.api_key }),
      key.name,
      key.admin ? "yes" : "no",
      key.qps === null ? "no limit" : String(key.qps),
      key.daily_quota === null ? "no limit" : String(key.daily_quota),
      key.created_at.replace("T", " ").replace("Z", " UTC"),
      key.revoked_at ? "revoked" : "active",
    ];
    const tds = cells.map((cell, i) => {
      const td = el("td", { "data-label": COLUMNS[i] });
      td.append(cell);
      return td;
    });
    const action = el("td", { "data-label": "" });
    if (key.api_key === this.signedInKey()) {
      action.append(el("span", { className: "own-key", text: "signed in with this key" }));
    } else if (!key.revoked_at) {
      const revoke = el("button", { type: "button", className: "danger", text: "Revoke" });
      revoke.setAttribute("aria-label", `Revoke key ${key.name} (${key.api_key.slice(0, 8)}…)`);
      revoke.addEventListener("click", () => this.revoke(key));
      action.append(revoke);
    }
    return el("tr", { className: key.revoked_at ? "revoked" : "", "data-key": key.api_key }, ...tds, action);
  }

  async create() {
    clearError($("#key-error"));
    const body = { name: $("#key-name").value.trim(), admin: $("#key-admin").checked };
    if ($("#key-qps").value !== "") body.qps = Number($("#key-qps").value);
    if ($("#key-quota").value !== "") body.daily_quota = Number($("#key-quota").value);
    try {
      const created = await call("POST", "/v3/keys", { body });
      $("#key-form").reset();
      $("#new-key-id").value = created.api_key;
      $("#new-key-secret").value = created.api_secret;
      $("#new-key").hidden = false;
      $("#new-key-secret").focus();
      await this.load();
    } catch (error) {
      showError($("#key-error"), error);
    }
  }

  hideSecret() {
    $("#new-key-id").value = "";
    $("#new-key-secret").value = "";
    $("#copy-status").textContent = "";
    $("#new-key").hidden = true;
  }

  async copy(button) {
    const field = $(`#${button.dataset.copy}`);
    try {
      await navigator.clipboard.writeText(field.value);
      $("#copy-status").textContent = "Copied.";
    } catch {
      field.select(); // no clipboard permission: selected, ready for Ctrl+C
      $("#copy-status").textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  }

  async revoke(key) {
    const sure = await confirmAction(
      `Revoke key ${key.name} (${key.api_key})? Every request with it fails from now on; this cannot be undone.`,
      "Revoke key",
    );
    if (!sure) return;
    try {
      await call("DELETE", `/v3/keys/${encodeURIComponent(key.api_key)}`);
      await this.load();
    } catch (error) {
      showError($("#key-error"), error);
    }
  }

  reset() {
    this.hideSecret();
    $("#key-table").replaceChildren();
  }
}
