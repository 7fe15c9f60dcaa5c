"""The OpenAI Images API through the official ``openai`` package, and 32 concurrent clients."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests
from PIL import Image


def png(data: bytes) -> Image.Image:
    Image.open(io.BytesIO(data)).verify()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


@pytest.fixture
def openai_client(cli_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cli_server.base}/v1", api_key="x", max_retries=0)


def test_openai_url(openai_client):
    result = openai_client.images.generate(
        model="stabilityai/sdxl-turbo",
        prompt="a panda",
        n=2,
        size="512x512",
        response_format="url",
        extra_body={"seed": 7, "steps": 1},
    )
    assert result.created > 0
    assert len(result.data) == 2
    urls = [item.url for item in result.data]
    assert len(set(urls)) == 2
    for url in urls:
        response = requests.get(url, timeout=30)
        assert response.status_code == 200
        assert png(response.content).size == (512, 512)


def test_openai_b64_json(openai_client):
    result = openai_client.images.generate(
        prompt="a panda",
        n=1,
        size="1024x1024",
        response_format="b64_json",
        extra_body={"seed": 7, "steps": 1},
    )
    assert len(result.data) == 1 and result.data[0].url is None
    assert png(base64.b64decode(result.data[0].b64_json)).size == (1024, 1024)


def test_openai_error_names_the_field(openai_client):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.images.generate(prompt="a panda", size="256x256")
    assert caught.value.status_code == 400
    body = caught.value.body
    assert body["param"] == "size" and "size" in body["message"]


def test_32_concurrent_requests_all_answered(cli_server):
    def one(index: int) -> dict:
        response = requests.post(
            f"{cli_server.base}/api/text2image",
            json={"prompt": f"panda {index}", "number": 1, "step": 1, "seed": index},
            timeout=300,
        )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(32) as pool:
        bodies = list(pool.map(one, range(32)))
    ids = {body["id"] for body in bodies}
    assert len(ids) == 32
    for body in bodies:
        assert body["status"] == "success" and len(body["output"]) == 1
        assert (cli_server.output_dir / body["id"] / "0_0.png").is_file()
        response = requests.get(body["output"][0]["url"], timeout=30)
        assert response.status_code == 200
        assert png(response.content).size == (512, 512)
