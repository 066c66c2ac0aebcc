"""`ugatit serve` as a program, through one running server: Gradio's own client against its API, a real
headless browser (Debian's chromium and chromedriver, through selenium) using the page, and, last, what
the server leaves on disk when it stops. One module, so that the ~15 s server start is paid once.

The first browser test saves the README's screenshot: to $UGATIT_SCREENSHOT when set (see docs/serve.md),
else into the test's temporary folder.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from app_helpers import call_app, chromium, wait_for
from PIL import Image

from ugatit.cli import main

WIDTH, HEIGHT = 1400, 1000  # the page's size in the screenshot


def test_api_gives_the_pixels_of_ugatit_translate(server, checkpoint, tmp_path, noise_image, need):
    photo = noise_image(tmp_path / "photo.png", 45, 30, seed=3)
    inputs, outputs, attention, verdict, downloads, message = call_app(server, need, tmp_path / "api", photo)
    assert message.startswith("Translated 1 image from domain A to domain B at 32x32 px"), message
    assert "| photo.png |" in verdict and len(inputs) == 1 and len(downloads) == 2

    cli_out = tmp_path / "cli"
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(checkpoint),
                "--input",
                str(photo),
                "--output",
                str(cli_out),
                "--attention",
                "--no-progress",
            ]
        )
        == 0
    )
    for shown, written in (
        (outputs[0]["image"], cli_out / "photo.png"),
        (attention[0]["image"], cli_out / "photo_attention.png"),
    ):
        got, want = np.asarray(Image.open(shown)), np.asarray(Image.open(written))
        assert got.shape == (30, 45, 3) and np.array_equal(got, want), shown


def test_api_takes_a_webcam_shot_with_the_uploads(server, tmp_path, noise_image, need):
    gradio_client = need("gradio_client")
    upload, shot = (
        noise_image(tmp_path / "upload.png", 24, 24, seed=1),
        noise_image(tmp_path / "shot.png", 40, 32, seed=2),
    )
    *_, verdict, downloads, message = call_app(
        server, need, tmp_path / "api", upload, direction="b2a", webcam_shot=gradio_client.handle_file(str(shot))
    )
    assert message.startswith("Translated 2 images from domain B to domain A"), message
    assert "| upload.png |" in verdict and "| shot.png |" in verdict and len(downloads) == 4


def test_api_refuses_a_text_file_in_words(server, tmp_path, need):
    fake = tmp_path / "holiday.png"
    fake.write_text("not a picture at all")
    *galleries, verdict, downloads, message = call_app(server, need, tmp_path / "api", fake)
    assert message == "**Not translated:** holiday.png: not an image, or a format Pillow cannot read."
    assert galleries == [[], [], []] and not verdict and not downloads


@pytest.fixture(scope="module")
def browser(need, tmp_path_factory):
    driver = chromium(need, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # The window's inner size, which the screenshot has: --window-size sets the outer one.
    outer = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(WIDTH + outer[0], HEIGHT + outer[1])
    yield driver
    driver.quit()


def open_app(browser, server):
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    return wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))[0]


def upload_and_translate(browser, server, path: Path, face_crop: bool = False) -> str:
    """Upload `path`, press Translate and return the status line once it has one."""
    from selenium.webdriver.common.by import By

    open_app(browser, server).send_keys(str(path))
    # The file list shows the name once the upload is done (stem and suffix in separate elements); while
    # it says "Uploading" the page is still settling, and a click can land on a neighbour.
    wait_for(
        browser,
        lambda d: path.stem in (text := d.find_element(By.ID, "upload").text) and "Uploading" not in text,
        f"{path.name} to upload",
    )
    if face_crop:
        browser.find_element(By.CSS_SELECTOR, "#face-crop input[type=checkbox]").click()
    browser.find_element(By.ID, "translate").click()
    return wait_for(browser, lambda d: d.find_element(By.ID, "status").text.strip(), "the status line")


def shown_images(browser, gallery: str) -> list[Image.Image]:
    """The images a gallery shows, fetched from the server by their URLs as the browser did."""
    from selenium.webdriver.common.by import By

    images = []
    for element in browser.find_elements(By.CSS_SELECTOR, f"#{gallery} img"):
        url = urllib.parse.urljoin(browser.current_url, element.get_attribute("src"))
        with urllib.request.urlopen(url, timeout=10) as response:
            images.append(Image.open(BytesIO(response.read())))
            images[-1].load()
    return images


def test_browser_translates_a_photo_with_its_face_crop(browser, server, tmp_path, need):
    from selenium.webdriver.common.by import By

    from ugatit.translate.faces import crop_to_face

    astronaut = Image.fromarray(need("skimage.data").astronaut())
    photo = tmp_path / "astronaut.png"
    astronaut.save(photo)
    status = upload_and_translate(browser, server, photo, face_crop=True)
    assert status.startswith("Translated 1 image from domain A to domain B"), status
    wait_for(
        browser,
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "#translations img") and d.find_elements(By.CSS_SELECTOR, "#attention img")
        ),
        "the translation and attention images",
    )
    crop = crop_to_face(astronaut).crop
    for gallery in ("translations", "attention"):
        [image] = shown_images(browser, gallery)
        assert image.format == "PNG" and image.size == (crop.width, crop.height), gallery
        assert np.asarray(image.convert("RGB")).std() > 1, f"{gallery}: a blank image"
    [shown_input] = shown_images(browser, "inputs")
    assert shown_input.size == (256, 256)  # the whole photo, with the face box drawn
    assert "P(domain A)" in browser.find_element(By.ID, "verdict").text
    # Everything the page loaded (scripts, styles, fonts, images) came from the app itself.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and [url for url in loaded if not url.startswith(server.url + "/")] == []
    downloads = browser.find_element(By.ID, "downloads").text.replace("\n", "")
    assert "astronaut.png" in downloads and "astronaut_attention.png" in downloads

    screenshot = Path(os.environ.get("UGATIT_SCREENSHOT") or tmp_path / "serve.png")
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size == (WIDTH, HEIGHT)


def test_browser_shows_a_message_for_a_text_file_named_png(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    fake = tmp_path / "selfie.png"
    fake.write_text("Dear diary, today I uploaded a text file.")
    status = upload_and_translate(browser, server, fake)
    assert status == "Not translated: selfie.png: not an image, or a format Pillow cannot read."
    assert not browser.find_elements(By.CSS_SELECTOR, "#translations img")
    assert "Traceback" not in browser.page_source


def test_browser_shows_the_discriminators_attention_beside_the_generators(
    browser, judging_server, tmp_path, noise_image
):
    """With a checkpoint that holds the discriminators (a training run), the attention gallery shows, for
    each image, where the generator looked and where the target domain's global and local discriminators
    looked on the translation (the paper's Figure 2 (b)-(d)), each labelled; the files are `ugatit
    translate --attention`'s."""
    from selenium.webdriver.common.by import By

    photo = noise_image(tmp_path / "photo.png", 32, 32, seed=5)
    status = upload_and_translate(browser, judging_server, photo)
    assert status.startswith("Translated 1 image from domain A to domain B"), status
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#attention img")) == 3, "3 attention maps")
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "where the target domain's global and local discriminators looked on the translation" in page
    shown = shown_images(browser, "attention")
    cli_out = tmp_path / "cli"
    args = ["--input", str(photo), "--output", str(cli_out), "--attention", "--no-progress"]
    assert main(["translate", "--checkpoint", str(judging_server_checkpoint(judging_server)), *args]) == 0
    for image, name in zip(shown, ("photo_attention", "photo_attention_global_D", "photo_attention_local_D")):
        written = np.asarray(Image.open(cli_out / f"{name}.png").convert("RGB"))
        assert np.array_equal(np.asarray(image.convert("RGB")), written), name
    # Labelled: each picture's caption names the network it shows (the gallery's captions).
    captions = [
        element.get_attribute("alt") or element.get_attribute("title") or ""
        for element in browser.find_elements(By.CSS_SELECTOR, "#attention img")
    ]
    labels = " ".join(captions) + " " + browser.find_element(By.ID, "attention").text
    for label in ("where genA2B looked", "global discriminator disGB", "local discriminator disLB"):
        assert label in labels, labels


def judging_server_checkpoint(server) -> Path:
    """The checkpoint a server was started on, from its command line."""
    command = server.process.args
    return Path(command[command.index("--checkpoint") + 1])


def test_a_stopped_server_leaves_nothing_behind(server, tmp_path, noise_image, need):
    """The app writes only in its temporary folder, and removes it when it stops. Runs last: it stops
    the shared server (a later test would get a new one)."""
    call_app(server, need, tmp_path / "api", noise_image(tmp_path / "photo.png", 20, 20), face_crop=True)
    assert any(server.tmp.iterdir()), "the app's temporary folder should be under TMPDIR while it runs"
    assert server.stop() == 0, server.log.read_text()
    left = {d.name: sorted(p.name for p in d.rglob("*")) for d in (server.cwd, server.home, server.tmp)}
    assert left == {"cwd": [], "home": [], "tmp": []}, left
    assert "listening on http://127.0.0.1:" in server.log.read_text()
