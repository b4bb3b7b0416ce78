"""Photos of realistic size upload: the form limits cap text fields, not files."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from werkzeug.test import encode_multipart


def noisy_jpeg(width: int, height: int) -> bytes:
    """A JPEG that does not compress well: about 1 MB for 1 MP."""
    rng = np.random.default_rng(2)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_one_megabyte_photo_is_classified(upload) -> None:  # type: ignore[no-untyped-def]
    data = noisy_jpeg(1152, 864)
    assert len(data) > 1_000_000
    response = upload(data, name="big.jpg", content_type="image/jpeg")
    assert response.status_code == 200, response.get_json()


def test_a_long_text_field_is_still_refused(client) -> None:  # type: ignore[no-untyped-def]
    boundary, body = encode_multipart({"url": "http://example.org/" + "a" * 300_000})
    response = client.post("/api/v1/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
