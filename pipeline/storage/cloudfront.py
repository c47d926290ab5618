"""CloudFront invalidation of the few paths that are not fingerprinted (the manifest).

Fingerprinted objects never change, so invalidating them (let alone ``/*``) would
only cost money and origin load; the manifest is the one object whose URL serves
new content after a deploy or rollback.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ..errors import ConfigError, DeployError
from .s3 import describe_error

_DISTRIBUTION_RE = re.compile(r"^[A-Z0-9]{6,32}$")


def validate_distribution_id(value: str) -> str:
    if not _DISTRIBUTION_RE.match(value):
        raise ConfigError(
            f"CloudFront distribution id {value!r} is not valid: it looks like E2QWRUHAPOMQZL"
        )
    return value


def invalidation_paths(keys: Sequence[str]) -> list[str]:
    """CloudFront paths (leading ``/``, percent-encoded like the CDN URLs) of object keys."""
    return ["/" + quote(key, safe="/") for key in keys]


def invalidate(
    distribution_id: str, keys: Sequence[str], *, client: Any | None = None, max_attempts: int = 6
) -> str:
    """Create one invalidation for ``keys``; return its id. Never invalidates ``/*``."""
    paths = invalidation_paths(keys)
    if client is None:
        client = boto3.session.Session().client(
            "cloudfront",  # "total_max_attempts" counts tries, as ours does; "max_attempts" retries
            config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts}))
    try:
        response = client.create_invalidation(
            DistributionId=validate_distribution_id(distribution_id),
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths},
                               "CallerReference": uuid.uuid4().hex},
        )
    except NoCredentialsError as exc:
        raise ConfigError("no usable AWS credentials for the CloudFront invalidation") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchDistribution", "AccessDenied"):
            raise ConfigError(
                f"cannot invalidate distribution {distribution_id!r}: {describe_error(exc)}"
            ) from exc
        raise DeployError(f"the CloudFront invalidation failed: {describe_error(exc)}") from exc
    except BotoCoreError as exc:
        raise DeployError(f"the CloudFront invalidation failed: {describe_error(exc)}") from exc
    return str(response["Invalidation"]["Id"])
