"""The docs name every setting the code reads (docs that match the code)."""

from pathlib import Path

from stream.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_architecture_lists_every_variable():
    text = (ROOT / "docs/ARCHITECTURE.md").read_text()
    missing = [f"STREAMREC_{n.upper()}" for n in Settings.model_fields if f"`STREAMREC_{n.upper()}`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md lacks {missing}"


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme and f"\n{target}:" in makefile
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_the_documented_worker_acl_is_the_code_s():
    import re

    from stream.stack.redis import worker_acl

    text = (ROOT / "docs/ARCHITECTURE.md").read_text()
    block = re.search(r"ACL SETUSER streamrec-worker on >… (.*?)\n\n", text, re.S).group(1)
    assert " ".join(block.split()) == worker_acl("streamrec")
