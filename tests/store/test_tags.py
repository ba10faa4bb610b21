"""Contract suite for the store's tag methods, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from homeport.store.database import Store

ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/tagged"
OTHER = "arn:aws:sagemaker:us-east-1:123456789012:training-job/other"


def test_no_tags(store: Store) -> None:
    assert store.list_tags(ARN) == []
    assert store.count_tags(ARN) == 0


def test_add_and_list_sorted_by_key(store: Store) -> None:
    store.add_tags(ARN, [("team", "ml"), ("Env", "prod"), ("a:b/c", ""), ("ünï", "cödé")])
    assert store.list_tags(ARN) == [("Env", "prod"), ("a:b/c", ""), ("team", "ml"), ("ünï", "cödé")]
    assert store.count_tags(ARN) == 4


def test_add_overwrites_existing_keys(store: Store) -> None:
    store.add_tags(ARN, [("team", "ml"), ("env", "dev")])
    store.add_tags(ARN, [("env", "prod"), ("owner", "me")])
    assert store.list_tags(ARN) == [("env", "prod"), ("owner", "me"), ("team", "ml")]


def test_same_key_twice_in_one_call_keeps_the_last(store: Store) -> None:
    store.add_tags(ARN, [("k", "first"), ("k", "second")])
    assert store.list_tags(ARN) == [("k", "second")]


def test_keys_are_case_sensitive(store: Store) -> None:
    store.add_tags(ARN, [("Key", "upper"), ("key", "lower")])
    assert store.list_tags(ARN) == [("Key", "upper"), ("key", "lower")]


def test_tags_are_per_resource(store: Store) -> None:
    store.add_tags(ARN, [("k", "v")])
    store.add_tags(OTHER, [("k", "w"), ("x", "y")])
    assert store.list_tags(ARN) == [("k", "v")]
    assert store.list_tags(OTHER) == [("k", "w"), ("x", "y")]
    store.delete_tags(OTHER, ["k"])
    assert store.list_tags(ARN) == [("k", "v")]
    assert store.count_tags(OTHER) == 1


def test_delete_some_keys_ignoring_unknown_ones(store: Store) -> None:
    store.add_tags(ARN, [("a", "1"), ("b", "2"), ("c", "3")])
    store.delete_tags(ARN, ["a", "c", "not-there"])
    assert store.list_tags(ARN) == [("b", "2")]
    assert store.count_tags(ARN) == 1


def test_empty_calls_are_no_ops(store: Store) -> None:
    store.add_tags(ARN, [("a", "1")])
    store.add_tags(ARN, [])
    store.delete_tags(ARN, [])
    assert store.list_tags(ARN) == [("a", "1")]


def test_long_values_round_trip(store: Store) -> None:
    value = "v" * 256
    store.add_tags(ARN, [("k" * 128, value)])
    assert store.list_tags(ARN) == [("k" * 128, value)]
