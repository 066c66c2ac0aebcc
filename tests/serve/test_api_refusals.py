"""What Gradio itself refuses before the app's function runs, sent through the API of a running `ugatit
serve`: the caller gets a message in words and the server log one line, not Gradio's traceback.

(Named to sort before test_app.py, so that it shares that module's server instead of starting another.)
"""

from __future__ import annotations

REFUSED = "ugatit serve: refused a request: "


def test_a_non_image_is_one_line_in_the_server_log(server, tmp_path, need):
    gradio_client = need("gradio_client")
    from gradio_client.exceptions import AppError

    client = gradio_client.Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))
    notes = tmp_path / "notes.txt"  # the upload box takes image files only, by their names
    notes.write_text("not a picture")
    shot = tmp_path / "shot.png"  # the webcam box decodes what it is sent
    shot.write_text("not a picture either")
    before = len(server.log.read_text())
    for images, webcam_shot, said in (
        ([notes], None, "Images: Invalid file type"),
        ([], shot, "Webcam shot: not an image, or a format Pillow cannot read"),
    ):
        try:
            client.predict(
                images=[gradio_client.handle_file(str(p)) for p in images],
                webcam_shot=gradio_client.handle_file(str(webcam_shot)) if webcam_shot else None,
                direction="a2b",
                face_crop=False,
                size=32,
                api_name="/translate",
            )
        except AppError as exc:
            assert said in str(exc), exc
        else:
            raise AssertionError(f"{images or webcam_shot} was translated")
    # The line is written (and flushed) before the answer goes out, so it is in the log by now.
    log = server.log.read_text()[before:]
    assert "Traceback" not in log, log
    lines = log.strip().splitlines()
    assert len(lines) == 2, log
    assert lines[0].startswith(REFUSED + "Images: Invalid file type") and "['image']" in lines[0]
    assert lines[1] == REFUSED + "Webcam shot: not an image, or a format Pillow cannot read"
