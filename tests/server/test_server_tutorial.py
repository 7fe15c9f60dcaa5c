"""The tutorial's curl commands, verbatim, against the real ``t2i-server`` CLI process."""

from __future__ import annotations

import io
import json
import subprocess
import uuid

import pytest
import requests
from PIL import Image
from server_testlib import wait_for

PROMPT = "A panda listening to music with headphones. highly detailed, 8k."
CURL_512 = (
    "curl -s -X POST http://127.0.0.1:{port}/api/text2image "
    """-d '{{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", """
    """"number": 1}}'"""
)
CURL_1024 = (
    "curl -s -X POST http://127.0.0.1:{port}/api/text2image "
    """-d '{{"prompt": "A panda listening to music with headphones. highly detailed, 8k.", """
    """"number": 1, "size": "1024x1024"}}'"""
)
TUTORIAL_FIELDS = {
    "averageImageGenerationTimeSeconds",
    "generationTimeSeconds",
    "id",
    "meta",
    "output",
    "status",
}


def fetch_png(url: str) -> Image.Image:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, url
    assert response.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    image.verify()  # checks the PNG's structure and CRCs
    return Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize(("command", "size"), [(CURL_512, 512), (CURL_1024, 1024)])
def test_tutorial_curl_verbatim(cli_server, command, size):
    completed = subprocess.run(
        command.format(port=cli_server.port),
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body = json.loads(completed.stdout)
    assert set(body) == TUTORIAL_FIELDS
    assert body["status"] == "success"
    uuid.UUID(body["id"])
    assert isinstance(body["generationTimeSeconds"], float) and body["generationTimeSeconds"] > 0
    assert body["averageImageGenerationTimeSeconds"] == pytest.approx(body["generationTimeSeconds"])
    meta = body["meta"]["input"]
    assert {k: meta[k] for k in ("batch", "model", "number", "prompt", "size", "step")} == {
        "batch": 1,
        "model": "stabilityai/sdxl-turbo",
        "number": 1,
        "prompt": PROMPT,
        "size": f"{size}x{size}",
        "step": 4,
    }
    assert len(body["output"]) == 1
    output = body["output"][0]
    assert set(output) == {"url", "latencySeconds"}
    assert output["latencySeconds"] == body["generationTimeSeconds"]  # one call: as in the tutorial
    assert output["url"] == f"{cli_server.base}/images/{body['id']}/0_0.png"
    image = fetch_png(output["url"])
    assert image.format == "PNG"
    assert image.size == (size, size)
    assert (cli_server.output_dir / body["id"] / "0_0.png").is_file()


def test_logs_are_structured_and_omit_the_prompt(cli_server):
    secret = f"confidential prompt {uuid.uuid4().hex}"
    response = requests.post(
        f"{cli_server.base}/api/text2image", json={"prompt": secret, "step": 1}, timeout=60
    )
    assert response.status_code == 200
    request_id = response.json()["id"]

    def logged():
        lines = cli_server.log.read_text(encoding="utf-8").splitlines()
        return [line for line in lines if request_id in line]

    (line,) = wait_for(logged, timeout=30, what="the request's log line")
    entry = json.loads(line)
    assert entry["message"] == "generated" and entry["images"] == 1
    text = cli_server.log.read_text(encoding="utf-8")
    assert secret not in text
    assert PROMPT not in text
    assert "Traceback" not in text
    for line in text.splitlines():  # library warnings and progress bars included: JSON only
        assert isinstance(json.loads(line), dict), line
