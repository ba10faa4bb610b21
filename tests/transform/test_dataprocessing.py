"""Batch transform DataProcessing: InputFilter, JoinSource, OutputFilter and MultiRecord splitting.

The examples follow SageMaker's "Associate Prediction Results with Input Records" guide and the
DataProcessing API reference (``$[1:]``, ``$.features``, ``$[0,5:]``, ``$['id','SageMakerOutput']``,
``$[0,-1]``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from homeport.transform.dataprocessing import (
    DataProcessing,
    DataProcessingError,
    JsonPath,
    RecordFormat,
    record_format,
    split_output,
)


def csv_dp(**spec: str) -> DataProcessing:
    return DataProcessing.from_spec(spec, "text/csv", "text/csv")


def json_dp(accept: str | None = "application/jsonlines", **spec: str) -> DataProcessing:
    return DataProcessing.from_spec(spec, "application/jsonlines", accept)


# --------------------------------------------------------------------------------------------------
# from_spec and active


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {},
        {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"},  # the guide's explicit default
        {"InputFilter": "", "OutputFilter": " $ "},
    ],
)
def test_defaults_are_inactive_and_pass_records_through_untouched(spec: dict[str, str] | None) -> None:
    # Inactive needs no supported media type: any container and data may run without DataProcessing.
    dp = DataProcessing.from_spec(spec, "application/x-image", None)
    assert not dp.active
    assert dp.filter_input(b'"a",b') == b'"a",b'
    assert dp.join_and_filter_output(b"in", b"\x00raw") == b"\x00raw"


@pytest.mark.parametrize(
    "spec",
    [{"InputFilter": "$[1:]"}, {"JoinSource": "Input"}, {"OutputFilter": "$[0]"}],
)
def test_any_non_default_setting_is_active(spec: dict[str, str]) -> None:
    assert csv_dp(**spec).active


def test_transforms_output_only_for_a_join_or_an_output_filter() -> None:
    assert not csv_dp(InputFilter="$[1:]").transforms_output
    assert csv_dp(JoinSource="Input").transforms_output
    assert csv_dp(OutputFilter="$[0]").transforms_output


def test_split_output_is_also_a_method() -> None:
    assert csv_dp(JoinSource="Input").split_output(b"1\n2\n", 2, "text/csv") == [b"1", b"2"]


def test_join_source_must_be_input_or_none() -> None:
    with pytest.raises(DataProcessingError, match="JoinSource must be 'Input' or 'None', not 'input'"):
        DataProcessing.from_spec({"JoinSource": "input"}, "text/csv", "text/csv")


def test_invalid_jsonpath_is_rejected_when_the_spec_is_compiled() -> None:
    with pytest.raises(DataProcessingError, match=r"Invalid JsonPath: features: .*must start with '\$'"):
        DataProcessing.from_spec({"InputFilter": "features"}, "application/json", None)
    with pytest.raises(DataProcessingError, match=r"Invalid JsonPath: \$\.\.id: deep scan"):
        DataProcessing.from_spec({"OutputFilter": "$..id"}, "application/json", None)


def test_filters_need_csv_or_json_media_types() -> None:
    with pytest.raises(DataProcessingError, match="ContentType is application/x-image"):
        DataProcessing.from_spec({"InputFilter": "$[1:]"}, "application/x-image", "text/csv")
    with pytest.raises(DataProcessingError, match="Accept is image/png"):
        DataProcessing.from_spec({"OutputFilter": "$[0]"}, "image/png", "image/png")
    with pytest.raises(DataProcessingError, match="ContentType is not set"):
        DataProcessing.from_spec({"JoinSource": "Input"}, None, None)


def test_accept_defaults_to_the_content_type_and_parameters_are_ignored() -> None:
    dp = DataProcessing.from_spec({"JoinSource": "Input"}, "text/csv; charset=utf-8", None)
    assert (dp.input_format, dp.output_format) == (RecordFormat.CSV, RecordFormat.CSV)
    assert dp.join_and_filter_output(b"1,2", b"9") == b"1,2,9"


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("text/csv", RecordFormat.CSV),
        ("TEXT/CSV; header=absent", RecordFormat.CSV),
        ("application/json", RecordFormat.JSON),
        ("application/jsonlines", RecordFormat.JSON),
        ("application/x-jsonlines", RecordFormat.JSON),
        ("application/vnd.custom+json", RecordFormat.JSON),
        ("application/x-recordio-protobuf", None),
        ("", None),
        (None, None),
    ],
)
def test_record_format(media_type: str | None, expected: RecordFormat | None) -> None:
    assert record_format(media_type) is expected


# --------------------------------------------------------------------------------------------------
# The guide's examples


def test_csv_input_filter_drops_the_id_column() -> None:
    dp = csv_dp(InputFilter="$[1:]")
    assert dp.filter_input(b"1001,5.1,3.5,1.4,0.2") == b"5.1,3.5,1.4,0.2"


def test_csv_join_with_input_appends_the_prediction_to_the_unfiltered_input() -> None:
    # "if the record is [1,2,3], and the label result is [1], then the output file would contain [1,2,3,1]"
    dp = csv_dp(JoinSource="Input")
    assert dp.join_and_filter_output(b"1,2,3", b"1") == b"1,2,3,1"


def test_csv_id_column_excluded_from_input_and_joined_with_the_prediction() -> None:
    dp = csv_dp(InputFilter="$[1:]", JoinSource="Input", OutputFilter="$[0,-1]")
    record = b"id-17,5.1,3.5,1.4,0.2"
    assert dp.filter_input(record) == b"5.1,3.5,1.4,0.2"
    assert dp.join_and_filter_output(record, b"0.9731") == b"id-17,0.9731"


def test_csv_output_filter_without_join_picks_from_the_prediction() -> None:
    dp = csv_dp(OutputFilter="$[1]")
    assert dp.join_and_filter_output(b"ignored", b"cat,0.97,0.03") == b"0.97"


def test_output_filter_index_and_range_from_the_api_reference() -> None:
    dp = csv_dp(JoinSource="Input", OutputFilter="$[0,5:]")
    assert dp.join_and_filter_output(b"id,a,b,c,d,e", b"p") == b"id,e,p"


def test_json_input_filter_selects_the_features() -> None:
    dp = json_dp(InputFilter="$.features")
    assert dp.filter_input(b'{"id": 7, "features": [1.5, 2, "x"]}') == b'[1.5,2,"x"]'


def test_json_join_adds_sagemaker_output_to_an_input_object() -> None:
    dp = json_dp(JoinSource="Input")
    assert json.loads(dp.join_and_filter_output(b'{"key":1}', b'{"label":1}')) == {
        "key": 1,
        "SageMakerOutput": {"label": 1},
    }


def test_json_id_attribute_excluded_from_input_and_joined_with_the_prediction() -> None:
    dp = json_dp(InputFilter="$.features", JoinSource="Input", OutputFilter="$['id','SageMakerOutput']")
    record = b'{"id": "r-1", "features": [0.1, 0.2], "note": "dropped"}'
    assert dp.filter_input(record) == b"[0.1,0.2]"
    assert dp.join_and_filter_output(record, b"[0.87, 0.13]") == b'{"id":"r-1","SageMakerOutput":[0.87,0.13]}'


def test_json_join_wraps_an_input_that_is_not_an_object() -> None:
    dp = json_dp(JoinSource="Input")
    joined = dp.join_and_filter_output(b"[1, 2, 3]", b"0.5")
    assert json.loads(joined) == {"SageMakerInput": [1, 2, 3], "SageMakerOutput": 0.5}


def test_json_join_overwrites_a_reserved_sagemaker_output_key() -> None:
    dp = json_dp(JoinSource="Input")
    joined = dp.join_and_filter_output(b'{"a":1,"SageMakerOutput":"old"}', b'"new"')
    assert joined == b'{"a":1,"SageMakerOutput":"new"}'


def test_csv_input_with_json_accept_is_joined_under_sagemaker_input() -> None:
    # Accept decides the output format: a CSV row (a JSON array of strings) is no object, so it is wrapped.
    dp = DataProcessing.from_spec({"JoinSource": "Input"}, "text/csv", "application/json")
    assert dp.join_and_filter_output(b'7,"x,y"', b'{"p":0.2}') == (
        b'{"SageMakerInput":["7","x,y"],"SageMakerOutput":{"p":0.2}}'
    )


def test_json_array_input_with_csv_accept_is_joined_as_fields() -> None:
    dp = DataProcessing.from_spec({"JoinSource": "Input"}, "application/json", "text/csv")
    assert dp.join_and_filter_output(b'[1, "a,b", true, null]', b"0.4") == b'1,"a,b",true,,0.4'


def test_join_keeps_non_ascii_text() -> None:
    dp = json_dp(JoinSource="Input")
    assert (
        dp.join_and_filter_output('{"name":"Zoë"}'.encode(), b"1")
        == '{"name":"Zoë","SageMakerOutput":1}'.encode()
    )


# --------------------------------------------------------------------------------------------------
# CSV quoting


@pytest.mark.parametrize(
    ("record", "expression", "expected"),
    [
        (b'1,"Smith, John",42', "$[1:]", b'"Smith, John",42'),
        (b'1,"say ""hi""",2', "$[1]", b'"say ""hi"""'),
        (b'"quoted",plain', "$[0,1]", b"quoted,plain"),  # quotes that are not needed are not kept
        (b"a,,c", "$[1:]", b",c"),
        (b'a,"",c', "$[1]", b'""'),  # a lone empty field must stay distinguishable from an empty line
        (b" a , b ", "$[1]", b" b "),  # spaces are data in RFC 4180
        (b"a,b,c\r\n", "$[2]", b"c"),  # a line break left by the splitter is not data
        (b"\xef\xbb\xbfid,x", "$[0]", b"id"),  # a byte-order mark is not part of the first field
        ("é,ü,ß".encode(), "$[-1]", "ß".encode()),
    ],
)
def test_csv_input_filter_quoting(record: bytes, expression: str, expected: bytes) -> None:
    assert csv_dp(InputFilter=expression).filter_input(record) == expected


def test_csv_fields_holding_line_breaks_are_quoted_on_output() -> None:
    dp = DataProcessing.from_spec({"JoinSource": "Input"}, "application/json", "text/csv")
    assert dp.join_and_filter_output(b'["a\\nb", "c\\rd"]', b"x") == b'"a\nb","c\rd",x'


def test_csv_record_with_a_quoted_line_break_is_one_record() -> None:
    assert csv_dp(InputFilter="$[1]").filter_input(b'1,"two\nlines"') == b'"two\nlines"'


def test_csv_join_requotes_fields_from_both_sides() -> None:
    dp = csv_dp(JoinSource="Input")
    assert dp.join_and_filter_output(b'"x,1",y', b'"label, long",0.5') == b'"x,1",y,"label, long",0.5'


# --------------------------------------------------------------------------------------------------
# JSONPath subset


DOC: dict[str, Any] = {"id": 3, "features": [10, 20, 30], "meta": {"a": 1, "b": {"c": 2}}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$", DOC),
        ("$.id", 3),
        ("$.meta.b.c", 2),
        ("$['meta']['a']", 1),
        ('$["meta"]', {"a": 1, "b": {"c": 2}}),
        ("$.features[0]", 10),
        ("$.features[-1]", 30),
        ("$.features[0,2]", [10, 30]),
        ("$.features[1:]", [20, 30]),
        ("$.meta.*", [1, {"c": 2}]),
        ("$.features[*]", [10, 20, 30]),
        ("$['id','features']", {"id": 3, "features": [10, 20, 30]}),
        ("$['id', 'missing']", {"id": 3}),  # Jayway leaves out absent keys of a name list
        ("$.meta.['a','b']", {"a": 1, "b": {"c": 2}}),  # the guide's "$.field1.['child1','child2']"
        ("$.*.a", [1]),  # under a wildcard, values without the key (or not objects) give nothing
        ("$.*[0]", [10]),
        ("$.*.b.c", [2]),
    ],
)
def test_jsonpath_selects_like_sagemaker(expression: str, expected: Any) -> None:
    assert JsonPath(expression).apply(DOC) == expected


def test_dots_inside_brackets_are_part_of_the_key() -> None:
    # The guide: "$.field1.['child1','child2.grandchild']" is not nesting; the name is taken literally.
    doc = {"f": {"c1": 1, "c2.g": 2, "c2": {"g": 3}}}
    assert JsonPath("$.f.['c1','c2.g']").apply(doc) == {"c1": 1, "c2.g": 2}
    assert JsonPath("$['f']['c2.g']").apply(doc) == 2


ROW = ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # SageMaker documents range ends as inclusive: "$[1:4] specifies the second through fifth
        # columns", "[:5] ... the first column (index 0) through the sixth column".
        ("$[1:4]", ["c1", "c2", "c3", "c4"]),
        ("$[:5]", ["c0", "c1", "c2", "c3", "c4", "c5"]),
        ("$[5:]", ["c5", "c6"]),
        ("$[2:5]", ["c2", "c3", "c4", "c5"]),
        ("$[-2:]", ["c5", "c6"]),
        ("$[:-2]", ["c0", "c1", "c2", "c3", "c4", "c5"]),
        ("$[:-1]", ROW),
        ("$[3:100]", ["c3", "c4", "c5", "c6"]),  # a range is clipped to the row
        ("$[1,3,5]", ["c1", "c3", "c5"]),
        ("$[ 0 , -1 ]", ["c0", "c6"]),
        ("$[-1]", "c6"),
    ],
)
def test_jsonpath_index_selectors(expression: str, expected: Any) -> None:
    assert JsonPath(expression).apply(ROW) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("features", "must start with '\\$'"),
        ("$..id", "deep scan"),
        ("$.", "ends with '.'"),
        ("$[", "is not closed"),
        ("$[]", "empty brackets"),
        ("$[?(@.a > 1)]", "filter and script expressions are not supported"),
        ("$[(@.length-1)]", "filter and script expressions are not supported"),
        ("$[0:2,246:]", "only single range filters"),  # SageMaker's own wording for this case
        ("$[::2]", "slice steps are not supported"),
        ("$[1.5]", "is not an array index"),
        ("$[a]", "is not an array index"),
        ("$[0,]", "an empty entry"),
        ("$['a' 'b']", "expected ','"),
        ("$['a]", "is not closed"),
        ("$.a b", "unexpected ' '"),
        ("$x", "unexpected 'x'"),
    ],
)
def test_jsonpath_rejects_what_sagemaker_does_not_support(expression: str, reason: str) -> None:
    with pytest.raises(DataProcessingError, match=reason) as info:
        JsonPath(expression)
    assert str(info.value).startswith(f"Invalid JsonPath: {expression}:")


# --------------------------------------------------------------------------------------------------
# Errors on records


def test_out_of_range_index_names_the_expression_and_record() -> None:
    dp = csv_dp(InputFilter="$[5]")
    with pytest.raises(DataProcessingError) as info:
        dp.filter_input(b"a,b,c", record_number=12)
    assert str(info.value) == (
        "InputFilter '$[5]' cannot be applied to record 12: "
        "index 5 is out of range for an array of 3 elements"
    )


def test_error_without_record_number() -> None:
    with pytest.raises(
        DataProcessingError, match=r"InputFilter '\$\.features' cannot be applied to the record"
    ):
        json_dp(InputFilter="$.features").filter_input(b'{"id": 1}')


@pytest.mark.parametrize(
    ("expression", "record", "reason"),
    [
        ("$.features", b'{"id": 1}', "key 'features' not found"),
        ("$.features", b"[1, 2]", "cannot select key 'features' from an array of 2 elements"),
        ("$[0]", b'{"a": 1}', "cannot index an object"),
        ("$['a','b']", b'"text"', "cannot select keys \\['a', 'b'\\] from a string"),
        ("$.a.*", b'{"a": 5}', "cannot apply '\\*' to a number"),
        ("$.a", b"{not json", "the record is not valid JSON"),
        ("$.a", b'{"a": "\xff"}', "the record is not UTF-8"),
    ],
)
def test_json_record_errors(expression: str, record: bytes, reason: str) -> None:
    with pytest.raises(DataProcessingError, match=reason):
        json_dp(InputFilter=expression).filter_input(record, record_number=1)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b'a,"unterminated', "the record is not valid CSV"),
        (b'"a"b,c', "the record is not valid CSV"),
        (b"a,b\nc,d", "more than one CSV line"),
    ],
)
def test_malformed_csv_records_are_errors(record: bytes, reason: str) -> None:
    with pytest.raises(DataProcessingError, match=reason):
        csv_dp(InputFilter="$[1:]").filter_input(record, record_number=4)


def test_output_filter_beyond_the_joined_record_is_an_error() -> None:
    # "If you specify indexes that aren't within the dimension size of the joined dataset, you get an error."
    dp = csv_dp(JoinSource="Input", OutputFilter="$[0,9]")
    with pytest.raises(DataProcessingError) as info:
        dp.join_and_filter_output(b"a,b", b"p", record_number=3)
    assert str(info.value) == (
        "OutputFilter '$[0,9]' cannot be applied to record 3: "
        "index 9 is out of range for an array of 3 elements"
    )


def test_unparseable_container_answer_is_reported_as_such() -> None:
    dp = json_dp(JoinSource="Input")
    with pytest.raises(DataProcessingError) as info:
        dp.join_and_filter_output(b'{"a":1}', b"not json", record_number=2)
    assert str(info.value).startswith(
        "JoinSource 'Input' cannot be applied to record 2: the container's answer is not valid JSON"
    )


def test_unparseable_input_record_when_joining() -> None:
    dp = json_dp(JoinSource="Input")
    with pytest.raises(DataProcessingError, match="record 5: the input record is not valid JSON"):
        dp.join_and_filter_output(b"{oops", b"1", record_number=5)


def test_json_object_input_cannot_join_csv_output() -> None:
    dp = DataProcessing.from_spec({"JoinSource": "Input"}, "application/json", "text/csv")
    with pytest.raises(
        DataProcessingError, match="the input is an object, which cannot be joined with CSV output"
    ):
        dp.join_and_filter_output(b'{"a":1}', b"0.5")


def test_csv_output_holds_only_scalars() -> None:
    pick_first = DataProcessing.from_spec(
        {"JoinSource": "Input", "OutputFilter": "$[0]"}, "application/json", "text/csv"
    )
    with pytest.raises(
        DataProcessingError, match="the selection is an object, which cannot be written as a CSV"
    ):
        pick_first.join_and_filter_output(b'[{"q": 1}]', b"0.5")
    whole = DataProcessing.from_spec({"JoinSource": "Input"}, "application/json", "text/csv")
    with pytest.raises(
        DataProcessingError, match="holds an array of 2 elements, which cannot be a CSV field"
    ):
        whole.join_and_filter_output(b"[[1, 2]]", b"0.5")


def test_jsonpath_through_a_definite_path_must_fit() -> None:
    with pytest.raises(DataProcessingError, match="key 'missing' not found"):
        json_dp(InputFilter="$.missing[*]").filter_input(b'{"a": 1}')
    # Fanned out by an index list, an out-of-range index is passed over instead.
    assert JsonPath("$[*][1]").apply([[1, 2], [3]]) == [2]


# --------------------------------------------------------------------------------------------------
# split_output


def test_split_csv_lines() -> None:
    assert split_output(b"0.1\n0.2\n0.3\n", 3, "text/csv") == [b"0.1", b"0.2", b"0.3"]
    assert split_output(b"a,b\r\nc,d\r\n", 2, "text/csv; charset=utf-8") == [b"a,b", b"c,d"]
    assert split_output(b"a\n\nc", 3, None) == [b"a", b"", b"c"]  # an empty answer still counts


def test_split_json_lines() -> None:
    body = b'{"p":1}\n{"p":2}\n'
    assert split_output(body, 2, "application/jsonlines") == [b'{"p":1}', b'{"p":2}']
    # Lines that are each an array stay whole: the body is not one JSON document.
    assert split_output(b"[1,2]\n[3,4]", 2, "application/json") == [b"[1,2]", b"[3,4]"]


def test_split_json_array_into_elements() -> None:
    body = b'[{"p": 1}, [0.2, 0.8], 3]'
    assert split_output(body, 3, "application/json") == [b'{"p":1}', b"[0.2,0.8]", b"3"]
    # An array printed one element per line is still one array, not lines.
    assert split_output(b"[\n1,\n2\n]\n", 2, "application/jsonlines") == [b"1", b"2"]


def test_split_single_record_is_the_whole_answer() -> None:
    assert split_output(b"[0.2, 0.8]\n", 1, "application/json") == [b"[0.2, 0.8]"]
    assert split_output(b'{\n  "p": 1\n}\n', 1, "application/json") == [b'{\n  "p": 1\n}']
    assert split_output(b"0.5", 1, "text/csv") == [b"0.5"]
    assert split_output(b"", 1, "text/csv") == [b""]


def test_split_nothing() -> None:
    assert split_output(b"", 0, "text/csv") == []
    assert split_output(b"[]", 0, "application/json") == []


@pytest.mark.parametrize(
    ("body", "count", "accept", "message"),
    [
        (b"1\n2\n3\n", 2, "text/csv", "the container returned 3 records for 2 inputs"),
        (b"1\n2\n", 1, "text/csv", "the container returned 2 records for 1 input"),
        (b"[1, 2, 3]", 2, "application/json", "the container returned 3 records for 2 inputs"),
        (b'{"predictions": [1, 2]}', 2, "application/json", "the container returned 1 record for 2 inputs"),
        (b"", 2, "application/jsonlines", "the container returned 0 records for 2 inputs"),
        (b"x", 0, "text/csv", "the container returned 1 record for 0 inputs"),
    ],
)
def test_split_count_mismatch(body: bytes, count: int, accept: str, message: str) -> None:
    with pytest.raises(DataProcessingError) as info:
        split_output(body, count, accept)
    assert str(info.value) == message
