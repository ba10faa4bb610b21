"""ImageRegistry: add/resolve/list/remove, references, validation, copying and concurrency."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from homeport.errors import ImageNotFound, ValidationException
from homeport.images.registry import ImageRegistry, hold, split_reference
from homeport.images.venvs import VenvBuildError, VenvCache

DECISION_TREES = Path(__file__).resolve().parents[2] / "examples" / "decision_trees"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

# -- add / resolve / list / remove ----------------------------------------------------------


def test_add_then_resolve(registry: ImageRegistry, program: Path, shared_venvs: VenvCache) -> None:
    image = registry.add("my-algo", program, env={"MODE": "fast"}, workdir="/opt/program/data")
    assert (image.name, image.tag, image.at) == ("my-algo", "latest", "/opt/program")
    assert image.reference == "my-algo:latest"
    assert image.env == {"MODE": "fast"}
    assert image.workdir == "/opt/program/data"
    assert image.venv == shared_venvs.path_for("")
    assert image.venv is not None and VenvCache.is_complete(image.venv)
    assert image.created > 0
    assert (image.root / "train").read_text() == (program / "train").read_text()
    assert (image.root / "data" / "table.csv").read_text() == "a,b\n1,2\n"
    assert image.root.is_relative_to(registry.images_dir)

    assert registry.resolve("my-algo") == image
    assert registry.resolve("my-algo:latest") == image


def test_metadata_is_one_json_file_per_image(registry: ImageRegistry, program: Path) -> None:
    registry.add("team/algo", program, tag="v1")
    files = list((registry.images_dir / "meta").glob("*.json"))
    assert [f.name for f in files] == ["team+algo@v1.json"]
    record = json.loads(files[0].read_text())
    assert record["name"] == "team/algo" and record["tag"] == "v1"
    assert record["source"] == str(program.resolve())


def test_tags_are_separate_images(registry: ImageRegistry, program: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "train").write_text("v2")
    v1 = registry.add("algo", program, tag="v1")
    v2 = registry.add("algo", other, tag="v2.0-rc_1")
    assert registry.resolve("algo:v1") == v1
    assert registry.resolve("algo:v2.0-rc_1") == v2
    assert (registry.resolve("algo:v2.0-rc_1").root / "train").read_text() == "v2"
    with pytest.raises(ImageNotFound):
        registry.resolve("algo")  # no "latest"
    assert [i.reference for i in registry.list()] == ["algo:v1", "algo:v2.0-rc_1"]


def test_list_is_sorted_and_empty_when_new(registry: ImageRegistry, program: Path) -> None:
    assert registry.list() == []
    registry.add("zeta", program)
    registry.add("alpha", program, tag="b")
    registry.add("alpha", program, tag="a")
    assert [i.reference for i in registry.list()] == ["alpha:a", "alpha:b", "zeta:latest"]


def test_remove(registry: ImageRegistry, program: Path) -> None:
    image = registry.add("algo", program, tag="v1")
    keep = registry.add("algo", program, tag="v2")
    assert image.venv is not None
    removed = registry.remove("algo:v1")
    assert removed == image
    assert not image.root.exists()
    assert image.venv.is_dir()  # the venv cache stays
    assert registry.list() == [keep]
    with pytest.raises(ImageNotFound):
        registry.resolve("algo:v1")
    with pytest.raises(ImageNotFound, match="algo:v1"):
        registry.remove("algo:v1")


def test_remove_by_registry_uri(registry: ImageRegistry, program: Path) -> None:
    registry.add("algo", program, tag="v1")
    assert registry.remove(f"{ECR}/algo:v1").reference == "algo:v1"
    assert registry.list() == []


# -- references -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("algo", ("algo", "latest")),
        ("algo:v1", ("algo", "v1")),
        ("team/algo:v1", ("team/algo", "v1")),
        ("localhost:5000/algo", ("localhost:5000/algo", "latest")),
        ("localhost:5000/algo:v1", ("localhost:5000/algo", "v1")),
        (f"{ECR}/algo:v1@sha256:abc", (f"{ECR}/algo", "v1")),
    ],
)
def test_split_reference(reference: str, expected: tuple[str, str]) -> None:
    assert split_reference(reference) == expected


@pytest.mark.parametrize(
    "reference",
    [
        f"{ECR}/decision-trees:v1",
        "localhost/decision-trees:v1",
        "localhost:5000/decision-trees:v1",
        "registry.example.com/some/path/decision-trees:v1",
    ],
)
def test_registry_uris_resolve_by_name(registry: ImageRegistry, program: Path, reference: str) -> None:
    image = registry.add("decision-trees", program, tag="v1")
    assert registry.resolve(reference) == image


def test_uri_prefers_the_full_repository_path(registry: ImageRegistry, program: Path) -> None:
    nested = registry.add("team/model", program, tag="1")
    flat = registry.add("model", program, tag="1")
    assert registry.resolve(f"{ECR}/team/model:1") == nested
    assert registry.resolve("localhost/other/model:1") == flat
    assert registry.resolve("model:1") == flat


def test_name_registered_with_its_host_resolves_exactly(registry: ImageRegistry, program: Path) -> None:
    exact = registry.add("localhost/algo", program)
    bare = registry.add("algo", program)
    assert registry.resolve("localhost/algo") == exact
    assert registry.resolve("example.com/algo") == bare


def test_unknown_image_message(registry: ImageRegistry) -> None:
    with pytest.raises(ImageNotFound) as caught:
        registry.resolve(f"{ECR}/missing:v3")
    message = caught.value.message
    assert message.startswith(f"Image '{ECR}/missing:v3' is not available")
    assert "'missing:v3'" in message
    assert "homeport image add missing:v3 FOLDER" in message
    assert caught.value.code == "ValidationException"


def test_unknown_plain_name_message(registry: ImageRegistry) -> None:
    with pytest.raises(ImageNotFound, match=r"no local image named 'nope:latest' is registered"):
        registry.resolve("nope")
    with pytest.raises(ImageNotFound, match="is not available"):
        registry.resolve("Not A Valid Name")


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Upper",
        "has space",
        "-lead",
        "trail-",
        "a//b",
        "/abs",
        "a/",
        "a:b",
        "a@b",
        "a..b",
        "x" * 256,
        "a/../b",
    ],
)
def test_bad_names_are_rejected(registry: ImageRegistry, program: Path, name: str) -> None:
    with pytest.raises(ValidationException, match="Invalid image name"):
        registry.add(name, program)
    assert registry.list() == []


@pytest.mark.parametrize(
    "name", ["a", "a1", "my-algo", "my_algo", "my.algo", "a__b", "a---b", "team/sub/algo"]
)
def test_good_names_are_accepted(registry: ImageRegistry, program: Path, name: str) -> None:
    assert registry.add(name, program).name == name


@pytest.mark.parametrize("tag", ["", ".hidden", "-dash", "a/b", "a:b", "sp ace", "x" * 129, ".."])
def test_bad_tags_are_rejected(registry: ImageRegistry, program: Path, tag: str) -> None:
    with pytest.raises(ValidationException, match="Invalid image tag"):
        registry.add("algo", program, tag=tag)


def test_longest_tag_is_accepted(registry: ImageRegistry, program: Path) -> None:
    tag = "V" + "x" * 127
    assert registry.add("algo", program, tag=tag).tag == tag


@pytest.mark.parametrize(
    ("at", "why"),
    [
        ("opt/program", "absolute"),
        ("/", "root folder"),
        ("//", "root folder"),
        ("/opt/ml/model", "SageMaker mounts"),
        ("/opt/ml/input/data/x", "SageMaker mounts"),
        ("/opt/ml/output", "SageMaker mounts"),
        ("/opt/ml/checkpoints/", "SageMaker mounts"),
        ("/opt/ml", "SageMaker mounts"),
        ("/opt", "SageMaker mounts"),
        ("/proc/self", "system"),
        ("/sys", "system"),
        ("/dev/shm", "system"),
        ("/etc/app", "system"),
        ("/usr/local/app", "system"),
        ("/tmp/app", "system"),
        ("/opt/program/../ml/model", "'..'"),
    ],
)
def test_bad_locations_are_rejected(registry: ImageRegistry, program: Path, at: str, why: str) -> None:
    with pytest.raises(ValidationException, match=why):
        registry.add("algo", program, at=at)
    with pytest.raises(ValidationException, match=why):
        registry.add("algo", program, workdir=at)


def test_locations_are_normalised(registry: ImageRegistry, program: Path) -> None:
    image = registry.add("algo", program, at="/opt/ml/code/", workdir="/srv//app/./x")
    assert image.at == "/opt/ml/code"
    assert image.workdir == "/srv/app/x"


def test_bad_env_and_folder_are_rejected(registry: ImageRegistry, program: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationException, match="environment variable name"):
        registry.add("algo", program, env={"1BAD": "x"})
    with pytest.raises(ValidationException, match="does not exist"):
        registry.add("algo", tmp_path / "missing")
    with pytest.raises(ValidationException, match="not a folder"):
        registry.add("algo", program / "train")
    with pytest.raises(ValidationException, match="requirements file"):
        registry.add("algo", program, requirements=tmp_path / "missing.txt")
    assert registry.list() == []


# -- copying --------------------------------------------------------------------------------


def test_copy_is_independent_of_the_source(registry: ImageRegistry, program: Path) -> None:
    image = registry.add("algo", program)
    (program / "train").write_text("changed")
    (program / "helper.py").unlink()
    (program / "new.py").write_text("new")
    assert (image.root / "train").read_text() == "#!/usr/bin/env python\nprint('training')\n"
    assert (image.root / "helper.py").is_file()
    assert not (image.root / "new.py").exists()


def test_executable_bits_are_kept(registry: ImageRegistry) -> None:
    image = registry.add("decision-trees", DECISION_TREES)
    for name in ("train", "serve"):
        mode = (image.root / name).stat().st_mode
        assert mode & stat.S_IXUSR and mode & stat.S_IXOTH, name
    for name in ("predictor.py", "wsgi.py", "nginx.conf"):
        assert not (image.root / name).stat().st_mode & stat.S_IXUSR, name
    assert sorted(p.name for p in image.root.iterdir()) == sorted(p.name for p in DECISION_TREES.iterdir())


def test_internal_symlinks_are_kept(registry: ImageRegistry, program: Path) -> None:
    (program / "relative").symlink_to("helper.py")
    (program / "data" / "up").symlink_to("../helper.py")
    (program / "absolute").symlink_to(program / "data" / "table.csv")
    (program / "dirlink").symlink_to("data", target_is_directory=True)
    (program / "roundabout").symlink_to(f"../{program.name}/helper.py")
    image = registry.add("algo", program)
    root = image.root
    assert os.readlink(root / "relative") == "helper.py"
    assert os.readlink(root / "data" / "up") == "../helper.py"
    # Absolute and out-and-back-in links are rewritten to point into the copy.
    assert os.readlink(root / "absolute") == "data/table.csv"
    assert os.readlink(root / "roundabout") == "helper.py"
    assert (root / "absolute").read_text() == "a,b\n1,2\n"
    assert (root / "dirlink").is_symlink() and (root / "dirlink" / "table.csv").is_file()


@pytest.mark.parametrize(
    "target", ["../../outside.txt", "/etc/passwd", "./../../outside.txt", "../../missing"]
)
def test_escaping_symlink_is_rejected(
    registry: ImageRegistry, program: Path, tmp_path: Path, target: str
) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    (program / "data" / "link").symlink_to(target)
    with pytest.raises(ValidationException, match=r"Symlink 'data/link' .* points outside"):
        registry.add("algo", program)
    assert registry.list() == []
    assert list((registry.images_dir / "tmp").iterdir()) == []


def test_special_files_are_rejected(registry: ImageRegistry, program: Path) -> None:
    os.mkfifo(program / "pipe")
    with pytest.raises(ValidationException, match="not a regular file"):
        registry.add("algo", program)


# -- atomic replacement ---------------------------------------------------------------------


def test_replacing_swaps_the_whole_image(registry: ImageRegistry, program: Path) -> None:
    old = registry.add("algo", program, env={"V": "1"})
    (program / "train").write_text("v2")
    new = registry.add("algo", program, env={"V": "2"})
    assert registry.resolve("algo") == new
    assert new.root != old.root
    assert not old.root.exists()  # nobody held it
    assert (new.root / "train").read_text() == "v2"
    assert [i.env for i in registry.list()] == [{"V": "2"}]


class FailingVenvs(VenvCache):
    def ensure(self, requirements: str, progress: object = None) -> Path:
        raise VenvBuildError("pip could not install the requirements (exit status 1):\nboom")


def test_failed_replacement_keeps_the_old_image(
    registry: ImageRegistry, program: Path, tmp_path: Path
) -> None:
    old = registry.add("algo", program)
    failing = ImageRegistry(registry.images_dir, FailingVenvs(tmp_path / "v"))
    (program / "train").write_text("v2")
    with pytest.raises(VenvBuildError, match="boom"):
        failing.add("algo", program)
    assert registry.resolve("algo") == old
    assert (old.root / "train").read_text() != "v2"
    assert list((registry.images_dir / "tmp").iterdir()) == []
    assert sorted(p.name for p in (registry.images_dir / "roots").iterdir() if p.is_dir()) == [old.root.name]


def test_held_root_survives_replacement_until_released(registry: ImageRegistry, program: Path) -> None:
    old = registry.add("algo", program)
    with hold(registry.resolve("algo")):
        registry.add("algo", program)
        assert (old.root / "train").is_file()  # a running job keeps its files
    registry.add("other", program)  # any later change collects it
    assert not old.root.exists()


def test_hold_of_a_replaced_image_fails_clearly(registry: ImageRegistry, program: Path) -> None:
    old = registry.add("algo", program)
    registry.add("algo", program)
    with pytest.raises(ImageNotFound, match="replaced or removed"), hold(old):
        pass


def test_readers_never_see_a_partial_image(registry: ImageRegistry, program: Path) -> None:
    registry.add("algo", program)
    stop = threading.Event()
    problems: list[str] = []
    seen: set[str] = set()

    def reader() -> None:
        while not stop.is_set():
            try:
                with hold(registry.resolve("algo")) as image:
                    seen.add((image.root / "train").read_text())
                    if not (image.root / "data" / "table.csv").is_file():
                        problems.append("missing file")
            except ImageNotFound as exc:
                if "replaced or removed" not in exc.message:  # the documented retry case
                    problems.append(exc.message)
            except OSError as exc:
                problems.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for version in range(15):
            (program / "train").write_text(f"v{version}")
            registry.add("algo", program)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert problems == []
    assert len(seen) > 1
    assert (registry.resolve("algo").root / "train").read_text() == "v14"
    registry.add("other", program)  # a reader may have held the last replaced root: collect it now
    roots = [p for p in (registry.images_dir / "roots").iterdir() if p.is_dir()]
    assert len(roots) == 2  # every replaced root was collected
