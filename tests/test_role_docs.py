"""The README's role-variable tables are generated from the roles' argument_specs."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "role-docs"


def test_readme_tables_match_argument_specs():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_default_is_declared():
    """Each variable in a role's defaults/main.yml has an entry in its argument_specs."""
    import yaml

    for role in sorted((ROOT / "roles").iterdir()):
        defaults = role / "defaults" / "main.yml"
        if not defaults.exists():
            continue
        declared = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
        options = {name for entry in declared["argument_specs"].values() for name in entry.get("options", {})}
        missing = set(yaml.safe_load(defaults.read_text()) or {}) - set(options)
        assert not missing, f"{role.name}: undeclared variables {sorted(missing)}"


def test_documented_defaults_are_the_real_ones():
    """A default written in argument_specs is the value defaults/main.yml sets."""
    import yaml

    for role in sorted((ROOT / "roles").iterdir()):
        defaults_file = role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
        declared = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
        for name, option in declared["argument_specs"].get("main", {}).get("options", {}).items():
            if "default" in option:
                assert defaults.get(name) == option["default"], f"{role.name}: {name}"
