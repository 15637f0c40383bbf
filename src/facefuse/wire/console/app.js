// The console's entry: signing in and out, and which page shows (the address's #fragment, so
// Back and Forward move between pages; credentials are never in the address).

import { ApiError, call, clearCredentials, credentials, saveCredentials } from "./api.js";
import { $ } from "./dom.js";
import { clearError, showError } from "./errors.js";
import { KeysPage } from "./keys.js";
import { TemplatesPage } from "./templates.js";
import { TryPage } from "./try.js";

const PAGES = ["try", "templates", "keys"];
const ADMIN_PAGES = new Set(["templates", "keys"]);

class Console {
  constructor() {
    this.admin = false;
    this.templates = [];
    this.tryPage = new TryPage();
    this.templatesPage = new TemplatesPage(() => this.refreshTemplates());
    this.keysPage = new KeysPage(() => (credentials() || {}).api_key);
    $("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn({ api_key: $("#api-key").value.trim(), api_secret: $("#api-secret").value.trim() });
    });
    $("#sign-out").addEventListener("click", () => this.signOut());
    window.addEventListener("hashchange", () => this.route());
  }

  async start() {
    const saved = credentials();
    if (saved) await this.signIn(saved);
    else this.showSignIn();
  }

  async signIn(creds) {
    const errorBox = $("#signin-error");
    clearError(errorBox);
    const button = $("#signin-button");
    button.disabled = true;
    try {
      const listed = await call("GET", "/v3/templates", { creds });
      this.admin = await this.isAdmin(creds);
      saveCredentials(creds);
      $("#signin-form").reset();
      this.templates = listed.templates;
      this.showConsole(creds);
    } catch (error) {
      clearCredentials();
      this.showSignIn();
      showError(errorBox, error);
    } finally {
      button.disabled = false;
    }
  }

  async isAdmin(creds) {
    try {
      await call("GET", "/v3/keys", { creds });
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.code === 10103) return false;
      throw error;
    }
  }

  showSignIn() {
    $("#signin").hidden = false;
    $("#tabs").hidden = true;
    $("#who").hidden = true;
    for (const page of PAGES) $(`#${page}`).hidden = true;
    $("#api-key").focus();
  }

  showConsole(creds) {
    $("#signin").hidden = true;
    $("#tabs").hidden = false;
    $("#who").hidden = false;
    $("#who-key").textContent = `${creds.api_key.slice(0, 8)}…${this.admin ? " (admin)" : ""}`;
    for (const link of document.querySelectorAll("[data-admin]")) link.hidden = !this.admin;
    this.tryPage.show(this.templates);
    this.route();
  }

  signOut() {
    clearCredentials();
    this.admin = false;
    this.tryPage.reset();
    this.templatesPage.reset();
    this.keysPage.reset();
    window.location.hash = "";
    this.showSignIn();
  }

  async refreshTemplates() {
    const listed = await call("GET", "/v3/templates");
    this.templates = listed.templates;
    this.tryPage.show(this.templates);
    this.templatesPage.show(this.templates);
  }

  route() {
    if (!credentials()) return;
    let page = window.location.hash.replace("#", "") || "try";
    if (!PAGES.includes(page) || (ADMIN_PAGES.has(page) && !this.admin)) page = "try";
    for (const name of PAGES) {
      $(`#${name}`).hidden = name !== page;
      const link = $(`#tabs a[href="#${name}"]`);
      if (link.getAttribute("aria-current") === "page" && name !== page) link.removeAttribute("aria-current");
      if (name === page) link.setAttribute("aria-current", "page");
    }
    if (page === "templates") this.templatesPage.show(this.templates);
    if (page === "keys") this.keysPage.load();
  }
}

new Console().start();
