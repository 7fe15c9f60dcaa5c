"""The tutorial's three configurations, as Text2ImageService specs (copied from its YAML)."""

from __future__ import annotations

from typing import Any

import yaml
from t2i_operator.render import Credentials, Owner

OWNER = Owner(name="stable-diffusion-ipex", namespace="default", uid="0000-uid")
# The tutorial's models-oss-secret.yaml placeholders, as a user would fill them in.
CREDENTIALS = Credentials("LTAI-test-access-key-id", "s3cr3t-access-key-secret-value")

# Option 1 values.yaml
DEFAULT_VALUES = """
resources:
  limits:
    cpu: "16"
    memory: 32Gi
  requests:
    cpu: "14"
    memory: 24Gi
"""

# Option 2: the PV/Secret/PVC the tutorial writes by hand become spec.model.oss.
OSS_SPEC = """
resources:
  limits:
    cpu: "16"
    memory: 32Gi
  requests:
    cpu: "14"
    memory: 24Gi
model:
  source: OSS
  oss:
    bucket: "<your-bucket-name>"
    endpoint: "oss-cn-beijing-internal.aliyuncs.com"
    otherOpts: "-o umask=022 -o max_stat_cache_size=0 -o allow_other"
    path: "/models"
    capacity: 50Gi
    credentialsSecretRef:
      name: models-oss-secret
"""

# tdx_values.yaml's nodeSelector becomes the TDX pool.
TDX_SPEC = """
placement:
  pool: TDX
"""
TDX_VALUES_LITERAL = """
placement:
  pool: Any
nodeSelector:
  nodepool-label: tdx-vm-pool
"""


def load(text: str) -> dict[str, Any]:
    return yaml.safe_load(text) or {}


def by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}
