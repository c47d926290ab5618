"""S3 error codes -> our exceptions, in one place (exact codes through botocore's Stubber)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from pipeline.errors import ConfigError, ConflictError, DeployError
from pipeline.storage.base import NotModified
from pipeline.storage.s3 import S3Settings, S3Storage


@pytest.fixture(scope="module")
def client() -> object:
    """One client for the module (making one loads botocore's models: the slow part); each
    test stubs it afresh."""
    return boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture
def stubbed(client: object) -> Iterator[tuple[S3Storage, Stubber]]:
    with Stubber(client) as stub:
        yield S3Storage(S3Settings(bucket="b", workers=1), client=client), stub
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(("operation", "code", "status"), [
    ("get_object", "NoSuchKey", 404),  # GET has an error body
    ("get_object", "404", 404),
    ("head_object", "404", 404),  # HEAD has none: botocore reports the status
    ("head_object", "NotFound", 404),
])
def test_every_not_found_code_reads_as_absent(stubbed: tuple[S3Storage, Stubber], operation: str,
                                             code: str, status: int) -> None:
    storage, stub = stubbed
    stub.add_client_error(operation, service_error_code=code, http_status_code=status)
    found = storage.read("k") if operation == "get_object" else storage.inspect(["k"])["k"]
    assert found is None


def test_an_unchanged_object_is_not_modified(stubbed: tuple[S3Storage, Stubber]) -> None:
    storage, stub = stubbed
    stub.add_client_error("get_object", service_error_code="304", http_status_code=304)
    assert storage.read_if_changed("k", etag="abc") == NotModified("abc")


@pytest.mark.parametrize("code", ["PreconditionFailed", "412", "ConditionalRequestConflict",
                                  "NoSuchKey"])
def test_a_lost_conditional_write_is_a_conflict(stubbed: tuple[S3Storage, Stubber],
                                                code: str) -> None:
    storage, stub = stubbed
    stub.add_client_error("put_object", service_error_code=code, http_status_code=412)
    expected = rf"'k' was changed by someone else \({code}\)"
    with pytest.raises(ConflictError, match=expected) as info:
        storage.put_if("k", b"{}", content_type="application/json", cache_control="no-store",
                       if_match="etag")
    assert isinstance(info.value.__cause__, ClientError)


def test_an_unconditional_write_has_no_precondition_to_lose(
    stubbed: tuple[S3Storage, Stubber]
) -> None:
    storage, stub = stubbed
    stub.add_client_error("put_object", service_error_code="PreconditionFailed",
                          service_message="x", http_status_code=412)
    with pytest.raises(DeployError, match="cannot write 'k': PreconditionFailed: x") as info:
        storage.put_if("k", b"", content_type="a/b", cache_control="c")
    assert not isinstance(info.value, ConflictError)


@pytest.mark.parametrize(("call", "operation", "message"), [
    (lambda s: s.read("k"), "get_object", "cannot read 'k': AccessDenied: no"),
    (lambda s: s.inspect(["k"]), "head_object", "cannot inspect 'k': AccessDenied: no"),
    (lambda s: s.put_bytes("k", b"", content_type="a/b", cache_control="c"), "put_object",
     "cannot write 'k': AccessDenied: no"),
    (lambda s: s.list_keys("static"), "list_objects_v2",
     "cannot list bucket 'b': AccessDenied: no"),
])
def test_other_errors_are_deploy_errors_naming_code_and_message(
    stubbed: tuple[S3Storage, Stubber], call: object, operation: str, message: str
) -> None:
    storage, stub = stubbed
    stub.add_client_error(operation, service_error_code="AccessDenied", service_message="no",
                          http_status_code=403)
    with pytest.raises(DeployError) as info:
        call(storage)  # type: ignore[operator]
    assert str(info.value) == message and not isinstance(info.value, ConflictError)
    assert isinstance(info.value.__cause__, ClientError)


@pytest.mark.parametrize("settings", [
    {"workers": 0}, {"workers": 65}, {"max_attempts": 0}, {"max_attempts": 21},
    {"workers": True}, {"read_timeout": 0}, {"connect_timeout": -1.0},
])
def test_s3_settings_refuse_values_the_client_would_misuse(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=r"storage setting|S3 setting"):
        S3Settings(bucket="b", **settings)  # type: ignore[arg-type]
