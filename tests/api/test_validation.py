"""Model-driven request validation against botocore's real SageMaker model, worded as AWS words it."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from homeport.api.service_model import load_service_model, operation
from homeport.api.validation import (
    compile_java_pattern,
    format_validation_errors,
    lower_first,
    pattern_report,
    translate_java_regex,
    validate_input,
    validate_shape_value,
)
from homeport.errors import SerializationException, ValidationException

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BUCKET = "s3://sagemaker-us-east-1-123456789012/"

# What SDK v2's Estimator(...).fit() sends (reference §4.1), debugger and profiler configs included.
SDK_CREATE_TRAINING_JOB: dict[str, Any] = {
    "AlgorithmSpecification": {
        "TrainingInputMode": "File",
        "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/byo:latest",
    },
    "OutputDataConfig": {"S3OutputPath": BUCKET},
    "TrainingJobName": "byo-2024-05-01-12-00-00-123",
    "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.m5.large"},
    "RoleArn": ROLE,
    "InputDataConfig": [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://data-bkt/train",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    ],
    "HyperParameters": {
        "epochs": "3",
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": '"s3://sagemaker-us-east-1-123456789012/job/source/sourcedir.tar.gz"',
        "sagemaker_region": '"us-east-1"',
    },
    "DebugHookConfig": {"S3OutputPath": BUCKET, "CollectionConfigurations": []},
    "ProfilerConfig": {"S3OutputPath": BUCKET, "DisableProfiler": False},
    "Environment": {"SAGEMAKER_CONTAINER_LOG_LEVEL": "20"},
    "Tags": [],
}


def _request(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SDK_CREATE_TRAINING_JOB)
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def _message(op_name: str, body: object) -> str:
    op = operation(op_name)
    assert op is not None
    with pytest.raises(ValidationException) as caught:
        validate_input(op, body)
    assert caught.value.code == "ValidationException"
    assert caught.value.status == 400
    return caught.value.message


def _serialization(op_name: str, body: object) -> str:
    op = operation(op_name)
    assert op is not None
    with pytest.raises(SerializationException) as caught:
        validate_input(op, body)
    assert caught.value.code == "SerializationException"
    return caught.value.message


def _valid(op_name: str, body: object) -> None:
    op = operation(op_name)
    assert op is not None
    validate_input(op, body)


# --- the service model -----------------------------------------------------------------------------


def test_service_model_is_loaded_once_and_finds_operations() -> None:
    assert load_service_model() is load_service_model("sagemaker")
    create = operation("CreateTrainingJob")
    assert create is not None and create.name == "CreateTrainingJob"
    assert operation("CreateTrainingJob") is create
    assert operation("NoSuchOperation") is None
    assert operation("__init__") is None
    runtime = operation("InvokeEndpoint", service="sagemaker-runtime")
    assert runtime is not None


def test_lower_first() -> None:
    assert lower_first("TrainingJobName") == "trainingJobName"
    assert lower_first("S3OutputPath") == "s3OutputPath"
    assert lower_first("") == ""


# --- required members and the message format ----------------------------------------------------------


def test_missing_required_members_are_listed_in_one_message() -> None:
    assert _message("CreateTrainingJob", {}) == (
        "3 validation errors detected: "
        "Value null at 'trainingJobName' failed to satisfy constraint: Member must not be null; "
        "Value null at 'roleArn' failed to satisfy constraint: Member must not be null; "
        "Value null at 'outputDataConfig' failed to satisfy constraint: Member must not be null"
    )


def test_json_null_counts_as_missing() -> None:
    message = _message("CreateTrainingJob", _request(RoleArn=None) | {"TrainingJobName": None})
    assert message.startswith("2 validation errors detected: ")
    assert "Value null at 'trainingJobName' failed to satisfy constraint: Member must not be null" in message
    # An optional member sent as null is simply absent.
    _valid("CreateTrainingJob", _request() | {"VpcConfig": None, "Tags": None})


def test_nested_required_member_path() -> None:
    assert _message("CreateTrainingJob", _request(OutputDataConfig={"KmsKeyId": "k"})) == (
        "1 validation error detected: Value null at 'outputDataConfig.s3OutputPath' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_format_validation_errors_counts() -> None:
    assert format_validation_errors(["a"]) == "1 validation error detected: a"
    assert format_validation_errors(["a", "b"]) == "2 validation errors detected: a; b"


# --- strings: pattern, length, enum -------------------------------------------------------------------


def test_bad_training_job_name_pattern() -> None:
    assert _message("CreateTrainingJob", _request(TrainingJobName="bad name!")) == (
        "1 validation error detected: Value 'bad name!' at 'trainingJobName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


def test_too_long_name_reports_length_then_pattern() -> None:
    name = "a" * 64
    assert _message("CreateTrainingJob", _request(TrainingJobName=name)) == (
        f"2 validation errors detected: Value '{name}' at 'trainingJobName' failed to satisfy "
        "constraint: Member must have length less than or equal to 63; "
        f"Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


def test_role_arn_too_short() -> None:
    message = _message("CreateTrainingJob", _request(RoleArn="arn:aws:iam::1:r"))
    assert message == (
        "2 validation errors detected: Value 'arn:aws:iam::1:r' at 'roleArn' failed to satisfy "
        "constraint: Member must have length greater than or equal to 20; "
        "Value 'arn:aws:iam::1:r' at 'roleArn' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
    )


def test_instance_type_outside_the_enum_lists_the_enum() -> None:
    model = load_service_model()
    values = model.shape_for("TrainingInstanceType").enum
    body = _request(ResourceConfig={"InstanceType": "gpu-box-1", "InstanceCount": 1, "VolumeSizeInGB": 30})
    assert _message("CreateTrainingJob", body) == (
        "1 validation error detected: Value 'gpu-box-1' at 'resourceConfig.instanceType' failed to "
        f"satisfy constraint: Member must satisfy enum value set: [{', '.join(values)}]"
    )
    assert "[ml.m4.xlarge, ml.m4.2xlarge, " in ", ".join(values).join("[]")


def test_list_sort_order_enum() -> None:
    assert _message("ListTrainingJobs", {"SortOrder": "Up"}) == (
        "1 validation error detected: Value 'Up' at 'sortOrder' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Ascending, Descending]"
    )
    _valid("ListTrainingJobs", {"SortOrder": "Descending", "SortBy": "CreationTime"})


def test_lengths_count_utf16_units_like_java() -> None:
    # U+1D400 is a letter (so the tag pattern accepts it) outside the BMP: two UTF-16 units each.
    letter = "\U0001d400"
    _valid("CreateTrainingJob", _request(Tags=[{"Key": "k", "Value": letter * 128}]))
    message = _message("CreateTrainingJob", _request(Tags=[{"Key": "k", "Value": letter * 129}]))
    assert message.endswith(
        "at 'tags.1.member.value' failed to satisfy constraint: "
        "Member must have length less than or equal to 256"
    )


def test_unicode_property_patterns_are_enforced() -> None:
    _valid("CreateTrainingJob", _request(Tags=[{"Key": "Équipe", "Value": "data science 42 @x"}]))
    assert _message("CreateTrainingJob", _request(Tags=[{"Key": "team", "Value": "a&b"}])) == (
        "1 validation error detected: Value 'a&b' at 'tags.1.member.value' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)"
    )


# --- numbers -----------------------------------------------------------------------------------------


def test_instance_count_below_model_minimum() -> None:
    # The model's TrainingInstanceCount minimum is 0 (serverless jobs), so -1 is the first bad value.
    body = _request(ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": -1, "VolumeSizeInGB": 30})
    assert _message("CreateTrainingJob", body) == (
        "1 validation error detected: Value '-1' at 'resourceConfig.instanceCount' failed to satisfy "
        "constraint: Member must have value greater than or equal to 0"
    )


def test_stopping_condition_nested_ranges() -> None:
    body = _request(StoppingCondition={"MaxRuntimeInSeconds": 0, "MaxPendingTimeInSeconds": 2419201})
    assert _message("CreateTrainingJob", body) == (
        "2 validation errors detected: "
        "Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1; "
        "Value '2419201' at 'stoppingCondition.maxPendingTimeInSeconds' failed to satisfy constraint: "
        "Member must have value less than or equal to 2419200"
    )


@pytest.mark.parametrize(
    ("max_results", "constraint"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (101, "Member must have value less than or equal to 100"),
    ],
)
def test_max_results_range(max_results: int, constraint: str) -> None:
    assert _message("ListTrainingJobs", {"MaxResults": max_results}) == (
        f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to satisfy "
        f"constraint: {constraint}"
    )


@pytest.mark.parametrize("max_results", [1, 100, 50.0])
def test_max_results_in_range(max_results: float) -> None:
    _valid("ListTrainingJobs", {"MaxResults": max_results})


def test_float_bounds_are_printed_as_java_doubles() -> None:
    body = {
        "EndpointConfigName": "cfg",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m", "InitialVariantWeight": -1.5}],
    }
    assert _message("CreateEndpointConfig", body) == (
        "1 validation error detected: Value '-1.5' at 'productionVariants.1.member.initialVariantWeight' "
        "failed to satisfy constraint: Member must have value greater than or equal to 0.0"
    )


# --- lists -------------------------------------------------------------------------------------------


def test_list_member_paths_are_one_based() -> None:
    channels = copy.deepcopy(SDK_CREATE_TRAINING_JOB["InputDataConfig"])
    channels.append(copy.deepcopy(channels[0]) | {"ChannelName": "bad channel"})
    assert _message("CreateTrainingJob", _request(InputDataConfig=channels)) == (
        "1 validation error detected: Value 'bad channel' at 'inputDataConfig.2.member.channelName' "
        "failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9\\.\\-_]+"
    )


def test_list_length_and_null_members() -> None:
    assert _message("CreateTrainingJob", _request(InputDataConfig=[])) == (
        "1 validation error detected: Value '[]' at 'inputDataConfig' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1"
    )
    assert _message("CreateTrainingJob", _request(InputDataConfig=[None])) == (
        "1 validation error detected: Value null at 'inputDataConfig.1.member' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_list_of_strings_is_reported_once_with_the_member_rules() -> None:
    body = _request(VpcConfig={"SecurityGroupIds": ["sg-1", "bad!", "worse!"], "Subnets": ["subnet-1"]})
    assert _message("CreateTrainingJob", body) == (
        "1 validation error detected: Value '[sg-1, bad!, worse!]' at 'vpcConfig.securityGroupIds' "
        "failed to satisfy constraint: Member must satisfy constraint: [Member must have length less "
        "than or equal to 32, Member must have length greater than or equal to 0, Member must satisfy "
        "regular expression pattern: [-0-9a-zA-Z]+]"
    )


# --- maps --------------------------------------------------------------------------------------------


def test_hyperparameter_value_too_long() -> None:
    long_value = "x" * 2501
    body = _request(HyperParameters={"lr": "0.1", "blob": long_value})
    assert _message("CreateTrainingJob", body) == (
        f"1 validation error detected: Value '{{lr=0.1, blob={long_value}}}' at 'hyperParameters' "
        "failed to satisfy constraint: Map value must satisfy constraint: [Member must have length "
        "less than or equal to 2500, Member must have length greater than or equal to 0, Member must "
        "satisfy regular expression pattern: .*]"
    )


def test_hyperparameter_keys_are_reported_before_values() -> None:
    body = _request(HyperParameters={"k" * 257: "v" * 2501})
    message = _message("CreateTrainingJob", body)
    assert message.startswith("2 validation errors detected: ")
    keys, values = message.removeprefix("2 validation errors detected: ").split("; ")
    assert keys.endswith(
        "at 'hyperParameters' failed to satisfy constraint: Map keys must satisfy constraint: "
        "[Member must have length less than or equal to 256, Member must have length greater than or "
        "equal to 0, Member must satisfy regular expression pattern: .*]"
    )
    assert "Map value must satisfy constraint: [Member must have length less than or equal to 2500" in values


def test_hyperparameter_values_follow_java_dot_semantics() -> None:
    # ".*" in Java does not cross line terminators, so a multi-line value breaks HyperParameterValue.
    message = _message("CreateTrainingJob", _request(HyperParameters={"a": "line1\nline2"}))
    assert "Map value must satisfy constraint" in message
    _valid("CreateTrainingJob", _request(Environment={"MULTI": "line1\nline2"}))


def test_too_many_hyperparameters() -> None:
    params = {f"p{i}": "1" for i in range(101)}
    message = _message("CreateTrainingJob", _request(HyperParameters=params))
    assert message.startswith("1 validation error detected: Value '{p0=1, p1=1, ")
    assert message.endswith(
        "at 'hyperParameters' failed to satisfy constraint: Member must have length less than or equal to 100"
    )


def test_environment_key_pattern() -> None:
    message = _message("CreateTrainingJob", _request(Environment={"1BAD": "x"}))
    assert message == (
        "1 validation error detected: Value '{1BAD=x}' at 'environment' failed to satisfy constraint: "
        "Map keys must satisfy constraint: [Member must have length less than or equal to 512, Member "
        "must have length greater than or equal to 0, Member must satisfy regular expression pattern: "
        "[a-zA-Z_][a-zA-Z0-9_]*]"
    )


# --- valid requests and unknown members --------------------------------------------------------------


def test_sdk_create_training_job_passes() -> None:
    _valid("CreateTrainingJob", _request())


def test_sdk_deploy_and_transform_requests_pass() -> None:
    _valid(
        "CreateModel",
        {
            "ModelName": "byo-2024-05-01-12-00-00-123",
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/byo:latest",
                "Environment": {},
                "ModelDataUrl": "s3://b/byo/output/model.tar.gz",
            },
        },
    )
    _valid(
        "CreateEndpointConfig",
        {
            "EndpointConfigName": "byo",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "byo",
                    "InitialVariantWeight": 1,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        },
    )
    _valid("CreateEndpoint", {"EndpointName": "byo", "EndpointConfigName": "byo", "Tags": []})
    _valid("DescribeTrainingJob", {"TrainingJobName": "byo"})


def test_unknown_members_are_ignored() -> None:
    body = _request(Bogus={"anything": [1, 2]})
    body["ResourceConfig"]["NotInTheModel"] = "x"
    _valid("CreateTrainingJob", body)


def test_operation_without_members_accepts_an_empty_object() -> None:
    _valid("ListTrainingJobs", {})


# --- timestamps --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp", [1714564800, 1714564800.5, "2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00"]
)
def test_timestamps_accept_epoch_numbers_and_iso_strings(stamp: object) -> None:
    _valid("ListTrainingJobs", {"CreationTimeAfter": stamp})


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        ("yesterday", "STRING_VALUE can not be converted to a Timestamp"),
        (True, "TRUE_VALUE can not be converted to a Timestamp"),
        ([], "Start of list found where not expected"),
    ],
)
def test_bad_timestamps(stamp: object, message: str) -> None:
    assert _serialization("ListTrainingJobs", {"CreationTimeAfter": stamp}) == message


# --- JSON type mismatches ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"MaxResults": "10"}, "STRING_VALUE can not be converted to an Integer"),
        ({"MaxResults": True}, "TRUE_VALUE can not be converted to an Integer"),
        ({"MaxResults": 1.5}, "NUMBER_VALUE can not be converted to an Integer"),
        ({"MaxResults": [1]}, "Start of list found where not expected"),
        ({"MaxResults": {"a": 1}}, "Start of structure or map found where not expected."),
        ({"NameContains": 5}, "NUMBER_VALUE can not be converted to a String"),
        ({"NameContains": False}, "FALSE_VALUE can not be converted to a String"),
        ({"NameContains": ["x"]}, "Start of list found where not expected"),
        ({"NameContains": {}}, "Start of structure or map found where not expected."),
    ],
)
def test_list_training_jobs_type_mismatches(body: dict[str, Any], message: str) -> None:
    assert _serialization("ListTrainingJobs", body) == message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"InputDataConfig": {"ChannelName": "train"}},
            "Start of structure or map found where not expected.",
        ),
        ({"InputDataConfig": "train"}, "Expected list or null"),
        ({"ResourceConfig": "ml.m5.large"}, "Expected null"),
        ({"ResourceConfig": []}, "Start of list found where not expected"),
        ({"HyperParameters": []}, "Start of list found where not expected"),
        ({"HyperParameters": "a=1"}, "Expected map or null"),
        ({"HyperParameters": {"epochs": 3}}, "NUMBER_VALUE can not be converted to a String"),
        ({"EnableNetworkIsolation": "true"}, "STRING_VALUE can not be converted to an Boolean"),
        ({"EnableNetworkIsolation": 1}, "NUMBER_VALUE can not be converted to a Boolean"),
        ({"Tags": [{"Key": "k", "Value": 1}]}, "NUMBER_VALUE can not be converted to a String"),
        (
            {"VpcConfig": {"SecurityGroupIds": [1], "Subnets": ["s"]}},
            "NUMBER_VALUE can not be converted to a String",
        ),
    ],
)
def test_create_training_job_type_mismatches(changes: dict[str, Any], message: str) -> None:
    assert _serialization("CreateTrainingJob", _request(**changes)) == message


def test_type_mismatch_wins_over_validation_errors() -> None:
    # AWS deserializes before it validates: the missing members are never reported.
    assert _serialization("CreateTrainingJob", {"StoppingCondition": {"MaxRuntimeInSeconds": "1h"}}) == (
        "STRING_VALUE can not be converted to an Integer"
    )


@pytest.mark.parametrize("body", [[], ["CreateTrainingJob"], "x", 3, None, True])
def test_body_must_be_a_json_object(body: object) -> None:
    _serialization("ListTrainingJobs", body)


def test_body_that_is_a_list_gets_the_aws_wording() -> None:
    assert _serialization("ListTrainingJobs", []) == "Start of list found where not expected"


# --- sensitive members ---------------------------------------------------------------------------------


def test_sensitive_values_are_not_echoed() -> None:
    oidc = {
        "ClientId": "id",
        "ClientSecret": "s" * 1025,
        "Issuer": "https://issuer.example.com",
        "AuthorizationEndpoint": "https://issuer.example.com/auth",
        "TokenEndpoint": "https://issuer.example.com/token",
        "UserInfoEndpoint": "https://issuer.example.com/userinfo",
        "LogoutEndpoint": "https://issuer.example.com/logout",
        "JwksUri": "https://issuer.example.com/jwks",
    }
    message = _message("CreateWorkforce", {"WorkforceName": "wf", "OidcConfig": oidc})
    assert message == (
        "1 validation error detected: Value at 'oidcConfig.clientSecret' failed to satisfy constraint: "
        "Member must have length less than or equal to 1024"
    )


# --- validate_shape_value ------------------------------------------------------------------------------


def test_validate_shape_value_returns_entries_with_the_given_path() -> None:
    shape = load_service_model().shape_for("StoppingCondition")
    assert validate_shape_value(shape, {"MaxRuntimeInSeconds": 0}, "job.stoppingCondition") == [
        "Value '0' at 'job.stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    ]
    assert validate_shape_value(shape, {"MaxRuntimeInSeconds": 60}) == []


# --- Java → Python pattern translation ---------------------------------------------------------------


def _java_matches(pattern: str, text: str) -> bool:
    compiled = compile_java_pattern(pattern)
    assert compiled is not None, pattern
    return compiled.fullmatch(text) is not None


def test_unicode_categories_translate() -> None:
    pattern = r"[\p{L}\p{M}\p{Z}\p{S}\p{N}\p{P}]*"
    assert _java_matches(pattern, "Grüße, 世界! 1½ €")
    assert not _java_matches(pattern, "tab\there")
    assert _java_matches(r"\p{Lu}+", "ÀB")
    assert not _java_matches(r"\p{Lu}+", "Àb")
    assert not _java_matches(r"\P{N}+", "a1")


def test_posix_classes_are_ascii_like_java() -> None:
    assert _java_matches(r"arn:[\p{Alnum}\-]+:lambda", "arn:aws-cn:lambda")
    assert not _java_matches(r"[\p{Alnum}]+", "é")
    assert _java_matches(r"\p{Print}+", "a b~")
    assert not _java_matches(r"\w+", "é")  # Java's \w is ASCII-only


def test_surrogate_pair_ranges_become_supplementary_code_points() -> None:
    pattern = r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*"
    assert _java_matches(pattern, "emoji 😀 and tab\t")
    assert not _java_matches(pattern, "bell\x07")


def test_java_dot_does_not_cross_line_terminators() -> None:
    assert _java_matches(".*", "anything at all")
    for terminator in ("\n", "\r", "\u0085", "\u2028", "\u2029"):
        assert not _java_matches(".*", f"a{terminator}b")
    assert _java_matches(r".*(?:[ \r\n\t].*)*", "line1\nline2")


def test_quantified_end_anchor_and_named_groups() -> None:
    assert _java_matches(r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,128}", "key: a/b")
    assert _java_matches(r"(?<word>[a-z]+)-\k<word>", "ab-ab")
    assert not _java_matches(r"(?<word>[a-z]+)-\k<word>", "ab-cd")
    assert _java_matches(r"\Qa.b\E", "a.b")
    assert not _java_matches(r"\Qa.b\E", "axb")
    assert _java_matches(r"\x{1F600}", "😀")


def test_untranslatable_constructs_are_reported_not_guessed() -> None:
    for pattern in (r"[a-z&&[^b]]", r"[a-z[0-9]]", r"\p{InGreek}+", r"\Gfoo", r"\p{javaLowerCase}"):
        assert translate_java_regex(pattern) is None
        assert compile_java_pattern(pattern) is None


def test_every_sagemaker_input_pattern_compiles_or_is_reported() -> None:
    model = load_service_model()
    report = pattern_report(model)
    # Collected independently of pattern_report: every pattern any operation input can reach.
    seen: set[str] = set()
    patterns: set[str] = set()
    stack = [op.input_shape for op in map(model.operation_model, model.operation_names) if op.input_shape]
    while stack:
        shape = stack.pop()
        if shape.name in seen:
            continue
        seen.add(shape.name)
        if "pattern" in shape.metadata:
            patterns.add(shape.metadata["pattern"])
        stack.extend(getattr(shape, "members", {}).values())
        stack.extend(getattr(shape, name) for name in ("member", "key", "value") if hasattr(shape, name))
    assert report.total == len(patterns) > 150
    compiled = {p for p in patterns if compile_java_pattern(p) is not None}
    assert compiled | set(report.untranslatable) == patterns
    assert not compiled & set(report.untranslatable)
    assert report.compiled == len(compiled)
    assert len(report.untranslatable) < 5


def test_compiled_patterns_are_cached() -> None:
    pattern = "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    assert compile_java_pattern(pattern) is compile_java_pattern(pattern)
    assert isinstance(compile_java_pattern(pattern), re.Pattern)
