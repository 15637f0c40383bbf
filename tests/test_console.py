"""The web console and the API docs in a real browser: Debian's Chromium driven by Playwright.

Each test signs in as a person would, on a desktop-sized and a phone-sized screen, and
every page is photographed into SCREENSHOTS (build/screenshots, ignored by git, or
FACEFUSE_SCREENSHOTS) for a person to look at. The browser may reach the server on
127.0.0.1 only: every other request fails the test (the pages load nothing from elsewhere).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from conftest import DEMO_TEMPLATE, REPO, RunningServer, face, start_server, stop_server
from PIL import Image

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")

CHROMIUM = os.environ.get("FACEFUSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",  # a synthetic camera (a test pattern: no face)
    "--use-fake-ui-for-media-stream",  # camera permission granted without a prompt
]
SCREENSHOTS = Path(os.environ.get("FACEFUSE_SCREENSHOTS", REPO / "build" / "screenshots"))
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SELFIE = "deepface__img5.jpg"
NO_FACE = "dlib__dlib_test_ffmpeg_data_eagle.jpg"
GROUP = "face_recognition__examples_two_people.jpg"
WIDE = "deepface__img49.jpg"  # 4352 px wide
AD_HOC_TEMPLATE = "deepface__img2.jpg"
AD_HOC_SIZE = (1536, 1152)
FUSION_TIMEOUT_MS = 120_000  # a fusion on a busy two-core machine; the test waits for the result, not a time
DEMO_SIZE = (512, 600)

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not Path(CHROMIUM).is_file(),
    reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)",
)


@dataclass
class Visit:
    """One browser page on the console, and what it asked for and complained about."""

    page: playwright_api.Page
    base_url: str
    viewport: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def sign_in(self, api_key: str, api_secret: str) -> None:
        self.goto("/")
        self.page.locator("#api-key").fill(api_key)  # labelled "API key" (the Keys page has one too)
        self.page.locator("#api-secret").fill(api_secret)
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{self.viewport}.png"), full_page=True)

    def assert_clean(self) -> None:
        """Nothing asked of another address, no script error, no Content-Security-Policy refusal."""
        elsewhere = [u for u in self.requests if not u.startswith((self.base_url, "blob:", "data:"))]
        assert not elsewhere, elsewhere
        assert not self.problems, self.problems


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("console") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(params=list(VIEWPORTS))
def visit(
    request: pytest.FixtureRequest, browser: playwright_api.Browser, console_server: RunningServer
) -> Iterator[Visit]:
    viewport = request.param
    context = browser.new_context(
        viewport=VIEWPORTS[viewport],
        is_mobile=viewport == "phone",
        has_touch=viewport == "phone",
        accept_downloads=True,
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_server.base_url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    current = Visit(page, console_server.base_url, viewport)

    def only_this_server(route: playwright_api.Route) -> None:
        current.requests.append(route.request.url)
        if route.request.url.startswith(console_server.base_url):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_this_server)
    page.on("pageerror", lambda error: current.problems.append(f"page error: {error}"))
    page.on("console", lambda m: current.problems.append(m.text) if m.type == "error" and _unexpected(m.text) else None)
    yield current
    context.close()


def _unexpected(text: str) -> bool:
    """Console errors other than the failed requests the tests cause on purpose (a 401, a 400)."""
    return "Failed to load resource" not in text


def _http(server: RunningServer) -> httpx.Client:
    return server.client()


def test_a_wrong_key_is_refused_with_the_api_error(visit: Visit, console_server: RunningServer) -> None:
    visit.sign_in(console_server.api_key, "not-the-secret")
    error = visit.page.locator("#signin-error")
    playwright_api.expect(error).to_be_visible()
    playwright_api.expect(error).to_contain_text("Code 10102 AUTH_FAILED")
    playwright_api.expect(error).to_contain_text("The API key or its secret is wrong")
    assert visit.page.evaluate("sessionStorage.length") == 0
    visit.shot("signin-wrong-key")
    visit.assert_clean()


def test_fuse_a_photo_with_the_demo_template_and_download_it(
    visit: Visit, console_server: RunningServer, tmp_path: Path
) -> None:
    page = visit.page
    visit.sign_in(console_server.api_key, console_server.api_secret)
    playwright_api.expect(page.get_by_role("heading", name="Try a fusion")).to_be_visible()
    assert console_server.api_secret not in page.url
    demo = page.locator(f'#gallery input[value="{DEMO_TEMPLATE}"]')
    playwright_api.expect(demo).to_be_checked()
    # The page's policy refuses eval, so waits read element properties (not wait_for_function).
    playwright_api.expect(page.locator("#gallery img").first).not_to_have_js_property("naturalWidth", 0)
    page.locator("#selfie-file").set_input_files(face(SELFIE))
    playwright_api.expect(page.get_by_alt_text("Your photo")).to_be_visible()
    page.get_by_role("slider", name="Shape degree").fill("60")
    page.get_by_role("button", name="Fuse", exact=True).click()
    result = page.get_by_alt_text("After: the fused result")
    playwright_api.expect(result).to_be_visible(timeout=FUSION_TIMEOUT_MS)
    playwright_api.expect(result).to_have_js_property("naturalWidth", DEMO_SIZE[0])
    playwright_api.expect(result).to_have_js_property("naturalHeight", DEMO_SIZE[1])
    playwright_api.expect(page.locator("#try-error")).to_be_hidden()
    page.get_by_role("slider", name="Before ◀ ▶ after").fill("80")
    assert "80%" in page.locator("#result-after").evaluate("img => img.style.clipPath")
    visit.shot("try-result")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the result").click()
    saved = tmp_path / "result.jpg"
    download_info.value.save_as(saved)
    with Image.open(saved) as image:
        assert (image.format, image.size) == ("JPEG", DEMO_SIZE)
    assert saved.read_bytes() != b""
    visit.assert_clean()


def test_a_template_photo_dropped_on_the_page_is_fused_into_ad_hoc(visit: Visit, console_server: RunningServer) -> None:
    page = visit.page
    visit.sign_in(console_server.api_key, console_server.api_secret)
    photo = face(AD_HOC_TEMPLATE)
    dropped = page.evaluate_handle(
        """([data, name]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            return transfer;
        }""",
        [base64.b64encode(photo.read_bytes()).decode(), photo.name],
    )
    page.locator("#adhoc-drop").dispatch_event("drop", {"dataTransfer": dropped})
    playwright_api.expect(page.locator("#adhoc-name")).to_contain_text(photo.name)
    playwright_api.expect(page.locator(f'#gallery input[value="{DEMO_TEMPLATE}"]')).not_to_be_checked()
    page.locator("#selfie-file").set_input_files(face(SELFIE))
    page.get_by_role("button", name="Fuse", exact=True).click()
    result = page.get_by_alt_text("After: the fused result")
    playwright_api.expect(result).to_be_visible(timeout=FUSION_TIMEOUT_MS)
    playwright_api.expect(result).to_have_js_property("naturalWidth", AD_HOC_SIZE[0])  # the dropped photo's size
    playwright_api.expect(result).to_have_js_property("naturalHeight", AD_HOC_SIZE[1])
    visit.shot("try-ad-hoc")
    visit.assert_clean()


def test_a_photo_without_a_face_shows_its_error_in_plain_words(visit: Visit, console_server: RunningServer) -> None:
    page = visit.page
    visit.sign_in(console_server.api_key, console_server.api_secret)
    page.locator("#selfie-file").set_input_files(face(NO_FACE))
    page.get_by_role("button", name="Fuse", exact=True).click()
    error = page.locator("#try-error")
    playwright_api.expect(error).to_be_visible(timeout=FUSION_TIMEOUT_MS)
    playwright_api.expect(error).to_contain_text("No face was found in your photo")
    playwright_api.expect(error).to_contain_text("Code 20003 DETECT_NOT_FACE")
    playwright_api.expect(page.locator("#result")).to_be_hidden()
    visit.shot("try-no-face")
    visit.assert_clean()


def test_a_photo_over_the_size_rules_is_shrunk_in_the_browser_and_fused(
    visit: Visit, console_server: RunningServer
) -> None:
    """4352 px wide: the API refuses it (10007), so the console sends it shrunk."""
    page = visit.page
    visit.sign_in(console_server.api_key, console_server.api_secret)
    page.locator("#selfie-file").set_input_files(face(WIDE))
    playwright_api.expect(page.locator("#selfie-name")).to_contain_text("shrunk here to 2048 px")
    playwright_api.expect(page.get_by_alt_text("Your photo")).to_have_js_property("naturalWidth", 2048)
    page.get_by_role("button", name="Fuse", exact=True).click()
    playwright_api.expect(page.get_by_alt_text("After: the fused result")).to_be_visible(timeout=FUSION_TIMEOUT_MS)
    playwright_api.expect(page.locator("#try-error")).to_be_hidden()
    visit.assert_clean()


def test_a_camera_photo_is_sent_like_a_chosen_one(visit: Visit, console_server: RunningServer) -> None:
    """Chromium's synthetic camera shows a test pattern: the photo is taken and sent, and the
    service answers that it holds no face."""
    page = visit.page
    visit.sign_in(console_server.api_key, console_server.api_secret)
    page.get_by_role("button", name="Take one with the camera").click()
    playwright_api.expect(page.locator("#camera-video")).not_to_have_js_property("videoWidth", 0)
    visit.shot("try-camera")
    page.get_by_role("button", name="Take the photo").click()
    playwright_api.expect(page.get_by_alt_text("Your photo")).to_be_visible()
    playwright_api.expect(page.locator("#selfie-name")).to_have_text("camera.jpg")
    page.get_by_role("button", name="Fuse", exact=True).click()
    playwright_api.expect(page.locator("#try-error")).to_contain_text("20003", timeout=FUSION_TIMEOUT_MS)
    visit.assert_clean()


def test_an_admin_adds_a_template_sees_its_faces_fuses_into_one_and_deletes_it(
    visit: Visit, console_server: RunningServer
) -> None:
    page = visit.page
    name = f"two people {visit.viewport}"
    visit.sign_in(console_server.api_key, console_server.api_secret)
    page.get_by_role("link", name="Templates").click()
    page.locator("#upload-file").set_input_files(face(GROUP))
    page.locator("#upload-name").fill(name)
    page.get_by_label("Default fuse degree").fill("80")
    page.get_by_role("button", name="Add the template").click()
    playwright_api.expect(page.locator("#upload-done")).to_contain_text("2 face(s) found", timeout=FUSION_TIMEOUT_MS)
    card = page.locator(".card", has=page.get_by_role("heading", name=name))
    playwright_api.expect(card.locator(".face")).to_have_count(2)
    playwright_api.expect(card.locator(".face-index")).to_have_text(["0", "1"])
    playwright_api.expect(card.locator(".face-count")).to_have_text("2")
    template_id = card.get_attribute("data-template")
    assert template_id
    visit.shot("templates")

    page.get_by_role("link", name="Try").click()
    page.locator("label.tile", has_text=name).click()
    playwright_api.expect(page.get_by_role("slider", name="Fuse degree")).to_have_value("80")  # the template's default
    page.get_by_role("button", name="Template face 1").click()
    playwright_api.expect(page.get_by_role("button", name="Template face 1")).to_have_attribute("aria-pressed", "true")
    page.locator("#selfie-file").set_input_files(face(SELFIE))
    page.get_by_role("button", name="Fuse", exact=True).click()
    playwright_api.expect(page.get_by_alt_text("After: the fused result")).to_be_visible(timeout=FUSION_TIMEOUT_MS)
    visit.shot("try-multi-face")

    page.get_by_role("link", name="Templates").click()
    card.get_by_role("button", name=re.compile("Delete")).click()
    page.get_by_role("button", name="Cancel").click()
    playwright_api.expect(card).to_be_visible()
    card.get_by_role("button", name=re.compile("Delete")).click()
    playwright_api.expect(page.locator("#confirm-message")).to_contain_text(template_id)
    visit.shot("templates-delete")
    page.get_by_role("button", name="Delete template", exact=True).click()
    playwright_api.expect(card).to_have_count(0)
    with _http(console_server) as client:
        assert client.get(f"/v3/templates/{template_id}", params=console_server.auth).status_code == 404
    visit.assert_clean()


def test_an_admin_creates_a_key_copies_its_secret_and_revokes_it(visit: Visit, console_server: RunningServer) -> None:
    page = visit.page
    name = f"phone app {visit.viewport}"
    visit.sign_in(console_server.api_key, console_server.api_secret)
    page.get_by_role("link", name="Keys").click()
    page.locator("#key-name").fill(name)
    page.get_by_label("Requests a second").fill("5")
    page.get_by_role("button", name="Create the key").click()
    secret_field = page.locator("#new-key-secret")
    playwright_api.expect(secret_field).not_to_have_value("")
    api_key, api_secret = page.locator("#new-key-id").input_value(), secret_field.input_value()
    page.get_by_role("button", name="Copy the secret").click()
    playwright_api.expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == api_secret
    visit.shot("keys-created")
    row = page.locator("tr", has_text=name)
    playwright_api.expect(row).to_contain_text("active")
    playwright_api.expect(row).to_contain_text("5")
    with _http(console_server) as client:
        fresh = {"api_key": api_key, "api_secret": api_secret}
        assert client.get("/v3/templates", params=fresh).status_code == 200

        page.get_by_role("button", name="I have copied it").click()
        playwright_api.expect(page.locator("#new-key")).to_be_hidden()
        assert secret_field.input_value() == ""
        row.get_by_role("button", name=re.compile("Revoke")).click()
        page.get_by_role("button", name="Revoke key", exact=True).click()
        playwright_api.expect(row).to_contain_text("revoked")
        playwright_api.expect(row.get_by_role("button")).to_have_count(0)
        assert client.get("/v3/templates", params=fresh).json()["ErrorCode"] == 10102
    visit.shot("keys")
    visit.assert_clean()


def test_a_key_without_admin_sees_only_try(visit: Visit, console_server: RunningServer) -> None:
    plain = json.loads(console_server.cli("keys", "create", "--name", f"plain {visit.viewport}", "--json").stdout)
    page = visit.page
    visit.sign_in(plain["api_key"], plain["api_secret"])
    playwright_api.expect(page.get_by_role("heading", name="Try a fusion")).to_be_visible()
    playwright_api.expect(page.get_by_role("link", name="Templates")).to_be_hidden()
    playwright_api.expect(page.get_by_role("link", name="Keys")).to_be_hidden()
    visit.goto("/#keys")
    playwright_api.expect(page.get_by_role("heading", name="Try a fusion")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    playwright_api.expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    visit.shot("signin")
    visit.assert_clean()


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll("input, button, select, textarea, a[href]")]
  .filter((c) => c.getClientRects().length && !(c.labels && c.labels.length) && !c.getAttribute("aria-label")
                 && !c.getAttribute("aria-labelledby") && !c.textContent.trim())
  .map((c) => c.outerHTML)"""


def test_the_keyboard_alone_signs_in_and_picks_and_every_control_has_a_label(
    visit: Visit, console_server: RunningServer
) -> None:
    page = visit.page
    visit.goto("/")
    playwright_api.expect(page.locator("#api-key")).to_be_focused()  # the first field waits for typing
    page.keyboard.type(console_server.api_key)
    page.keyboard.press("Tab")
    page.keyboard.type(console_server.api_secret)
    page.keyboard.press("Enter")
    playwright_api.expect(page.get_by_role("heading", name="Try a fusion")).to_be_visible()
    page.locator(f'#gallery input[value="{DEMO_TEMPLATE}"]').focus()
    page.keyboard.press("Space")
    playwright_api.expect(page.locator(f'#gallery input[value="{DEMO_TEMPLATE}"]')).to_be_checked()
    slider = page.get_by_role("slider", name="Shape degree")
    slider.focus()
    page.keyboard.press("ArrowRight")
    playwright_api.expect(slider).to_have_value("41")
    playwright_api.expect(page.locator("#shape-degree-value")).to_have_text("41")
    for page_name in ("#try", "#templates", "#keys"):
        visit.goto("/" + page_name)
        playwright_api.expect(page.locator(page_name)).to_be_visible()
        assert page.evaluate(UNLABELLED_CONTROLS) == [], page_name
    visit.assert_clean()


def test_the_api_docs_render_and_their_examples_run(visit: Visit, console_server: RunningServer) -> None:
    page = visit.page
    visit.goto("/docs")
    playwright_api.expect(page.locator(".opblock-summary-path", has_text="/v3/facefuse").first).to_be_visible()
    playwright_api.expect(page.locator(".opblock-summary-path", has_text="/v3/keys").first).to_be_visible()
    visit.shot("docs")
    health = page.locator(".opblock", has=page.locator(".opblock-summary-path", has_text="/healthz"))
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Execute").click()
    playwright_api.expect(health.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    playwright_api.expect(health.locator(".live-responses-table")).to_contain_text('"status": "ok"')

    fuse = page.locator(".opblock-post", has=page.locator('.opblock-summary-path[data-path="/v3/facefuse"]'))
    fuse.locator(".opblock-summary").click()
    fuse.locator('input[placeholder="api_key"]').fill(console_server.api_key)
    fuse.locator('input[placeholder="api_secret"]').fill(console_server.api_secret)
    fuse.get_by_role("button", name="Execute").click()  # the document's example body, as it is
    status = fuse.locator(".live-responses-table tbody .response-col_status").first
    playwright_api.expect(status).to_have_text("200", timeout=FUSION_TIMEOUT_MS)
    playwright_api.expect(fuse.locator(".live-responses-table")).to_contain_text('"media_data_type": "jpg"')
    visit.assert_clean()


def test_pages_forbid_inline_script_and_framing_and_logs_hold_no_secret(console_server: RunningServer) -> None:
    with _http(console_server) as client:
        for path in ("/", "/docs", "/console/app.js", "/docs/assets/swagger-ui-bundle.js"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            policy = dict(p.strip().split(" ", 1) for p in answer.headers["content-security-policy"].split(";"))
            assert policy["script-src"] == "'self'", path
            assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'none'", path
            assert answer.headers["x-frame-options"] == "DENY", path
            assert answer.headers["x-content-type-options"] == "nosniff", path
        for page in ("/", "/docs"):
            html = client.get(page).text
            assert not re.search(r"<script(?![^>]*\bsrc=)", html), page  # every script is a file
            assert not re.search(r"\son[a-z]+=", html), page  # no inline event handlers
            assert "http://" not in html and "https://" not in html, page  # nothing from elsewhere
        assert client.get("/console/nothing.js").json()["ErrorCode"] == 10104
        assert client.get("/console/..%2Fapp.py").status_code == 404
    log = (console_server.data_dir.parent / f"server-{console_server.base_url.rsplit(':', 1)[1]}.log").read_text()
    assert console_server.api_secret not in log
