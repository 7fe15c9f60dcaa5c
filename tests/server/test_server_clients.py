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


def test_openai_models_lists_the_served_model(openai_client, cli_server):
    listed = openai_client.models.list()
    assert [m.id for m in listed.data] == ["stabilityai/sdxl-turbo"]
    assert listed.data[0].object == "model" and listed.data[0].created > 0
    for name in ("stabilityai/sdxl-turbo", "sdxl-turbo"):
        assert openai_client.models.retrieve(name).id == "stabilityai/sdxl-turbo"
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.models.retrieve("dall-e-3")
    assert caught.value.body["code"] == "model_not_found"


def test_openai_unknown_model_is_model_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.images.generate(model="dall-e-3", prompt="a panda", n=1)
    assert caught.value.status_code == 404
    body = caught.value.body
    assert (body["code"], body["type"], body["param"]) == (
        "model_not_found",
        "invalid_request_error",
        "model",
    )
    assert "dall-e-3" in body["message"] and "sdxl-turbo" in body["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stream": True}, "stream"),
        ({"output_format": "jpeg"}, "output_format"),
        ({"output_compression": 80}, "output_compression"),
        ({"background": "transparent"}, "background"),
        ({"quality": "ultra"}, "quality"),
    ],
)
def test_openai_unsupported_parameters_are_named_in_a_400(openai_client, params, field):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.images.generate(prompt="a panda", n=1, **params)
    assert caught.value.body["param"] == field and field in caught.value.body["message"]


def test_openai_alias_and_documented_ignored_parameters_are_accepted(openai_client):
    """quality/style/moderation/user are accepted and ignored (docs/api.md); the result is
    the same image as without them (same seed)."""
    common = {"prompt": "a panda", "n": 1, "size": "512x512", "response_format": "b64_json"}
    plain = openai_client.images.generate(**common, extra_body={"seed": 3, "steps": 1})
    dressed = openai_client.images.generate(
        **common,
        model="sdxl-turbo",
        quality="hd",
        style="natural",
        moderation="low",
        user="u-1",
        background="opaque",
        output_format="png",
        stream=False,
        extra_body={"seed": 3, "steps": 1},
    )
    assert dressed.data[0].b64_json == plain.data[0].b64_json
