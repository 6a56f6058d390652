"""The Dockerfile and the compose files, checked without a Docker engine: they parse, copy only files that
exist, install with CI's own script, run commands that exist and start, and use only real settings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs.settings import Settings, env_name
from tests.ship.dockerfile import Dockerfile, env_pairs, parse, parse_file, substitute

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_ENV = {env_name(name) for name in Settings.model_fields}
# Variables compose itself reads (interpolation), not settings of the product.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "IMAGE_VARIANT", "DASHBOARD_PUBLISHED_PORT"}


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_file(ROOT / "Dockerfile")


def _compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def _dockerignored() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# --- the Dockerfile ----------------------------------------------------------------------------------------


def test_parser_reads_forms_flags_and_continuations() -> None:
    parsed = parse(
        "# syntax=docker/dockerfile:1\nARG V=cpu\nFROM base-${V} AS b\n"
        "RUN --mount=type=cache,target=/c a \\\n  # a comment inside\n  && b\n"
        'CMD ["x", "y"]\nHEALTHCHECK --interval=5s CMD ["z"]\nENV A=1 B="two words"\n'
    )
    assert parsed.directives == {"syntax": "docker/dockerfile:1"} and parsed.global_args == {"V": "cpu"}
    run, cmd, health, env = parsed.stages[0].instructions
    assert run.flags == {"mount": "type=cache,target=/c"} and run.value == "a && b"
    assert cmd.exec_form == ["x", "y"] and health.exec_form == ["z"] and health.flags == {"interval": "5s"}
    assert env_pairs(env) == {"A": "1", "B": "two words"}
    assert substitute(parsed.stages[0].base, parsed.global_args) == "base-cpu"
    for broken in ("FROM a\nFOO bar\n", "RUN x\n", 'FROM a\nCMD ["x",\n', "FROM a\nRUN x \\\n"):
        with pytest.raises(ValueError):
            parse(broken)


def test_stages_variants_and_default_target(dockerfile: Dockerfile) -> None:
    names = [stage.name for stage in dockerfile.stages]
    assert names == [
        "os-cpu",
        "os-cuda",
        "os",
        "build",
        "runtime",
    ]  # the last one is what `docker build` makes
    assert dockerfile.global_args["VARIANT"] == "cpu"
    os_stage = dockerfile.stage("os")
    for variant in ("cpu", "cuda"):
        assert substitute(os_stage.base, {**dockerfile.global_args, "VARIANT": variant}) in names
    assert dockerfile.stage("build").base == "os" and dockerfile.stage("runtime").base == "os"


def test_cuda_torch_matches_the_cuda_base_image(dockerfile: Dockerfile) -> None:
    cuda = dockerfile.stage("os-cuda")
    base = substitute(cuda.base, dockerfile.global_args)
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(base|runtime|cudnn-runtime)-ubuntu[\d.]+", base)
    assert match, base
    (arg,) = cuda.all("ARG")
    name, _, torch_cuda = arg.value.partition("=")
    assert name == "TORCH_CUDA" and torch_cuda == f"cu{match.group(1)}{match.group(2)}"
    index = env_pairs(cuda.all("ENV")[0])["TORCH_INDEX_URL"]
    assert substitute(index, {"TORCH_CUDA": torch_cuda}) == f"https://download.pytorch.org/whl/{torch_cuda}"
    cpu_index = env_pairs(dockerfile.stage("os-cpu").all("ENV")[0])["TORCH_INDEX_URL"]
    assert cpu_index == "https://download.pytorch.org/whl/cpu"
    assert "TORCH_INDEX_URL" in (ROOT / "scripts/bootstrap.sh").read_text()


def test_every_copy_source_exists_and_is_in_the_context(dockerfile: Dockerfile) -> None:
    ignored = _dockerignored()
    copies = [i for i in dockerfile.all("COPY") if "from" not in i.flags]
    assert copies
    for copy in copies:
        *sources, _destination = copy.words()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile line {copy.line}: {source} does not exist"
            top = source.split("/")[0]
            assert top not in ignored and source not in ignored, f"{source} is in .dockerignore"
    assert {".env", ".venv", ".git", "data", "tests"} <= set(ignored)  # secrets and bulk stay out
    (from_build,) = [i for i in dockerfile.all("COPY") if i.flags.get("from")]
    assert from_build.flags["from"] == "build" and from_build.words() == ["/app", "/app"]


def test_install_line_is_the_one_ci_uses(dockerfile: Dockerfile) -> None:
    readme = (ROOT / "README.md").read_text()
    ci_line = re.search(r"<!-- ci: test command -->\s*```sh\n(.+)\n", readme)
    assert ci_line and ci_line.group(1).startswith("scripts/bootstrap.sh")
    assert "bootstrap.sh" in (ROOT / ".ci/run").read_text() or "README" in (ROOT / ".ci/run").read_text()
    runs = [run.value for run in dockerfile.all("RUN")]
    installs = [run for run in runs if "bootstrap.sh" in run]
    assert len(installs) == 1 and "PYTHON=python3 scripts/bootstrap.sh" in installs[0]
    assert "--dev" not in installs[0]  # the runtime set: CI adds only the test tools
    assert not [run for run in runs if re.search(r"\bpip3?\b.*\binstall\b", run)]  # no second install path


def test_runtime_is_unprivileged_with_a_data_volume_and_a_healthcheck(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.stage("runtime")
    (user,) = runtime.all("USER")
    assert user.value not in ("root", "0") and "useradd" in " ".join(i.value for i in runtime.all("RUN"))
    (volume,) = runtime.all("VOLUME")
    assert volume.exec_form == ["/data"]
    env = {k: v for i in runtime.all("ENV") for k, v in env_pairs(i).items()}
    assert env["IMAGINE_DATA_DIR"] == "/data" and env["HF_HOME"].startswith("/data/")
    assert env["PATH"].startswith("/app/.venv/bin:")
    (health,) = runtime.all("HEALTHCHECK")
    assert health.exec_form == ["python", "-m", "jobs.healthcheck"]
    assert {"interval", "timeout", "start-period", "retries"} <= set(health.flags)


def test_settings_in_the_image_exist(dockerfile: Dockerfile) -> None:
    names = {k for i in dockerfile.all("ENV") for k in env_pairs(i) if k.startswith("IMAGINE_")}
    assert names and names <= SETTINGS_ENV, names - SETTINGS_ENV


def test_default_command_is_a_readme_entry_point(dockerfile: Dockerfile) -> None:
    (cmd,) = dockerfile.stage("runtime").all("CMD")
    (entrypoint,) = dockerfile.stage("runtime").all("ENTRYPOINT")
    assert entrypoint.exec_form == ["tini", "--"] and cmd.exec_form == ["imagine", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["imagine"] == "bot.cli:main"


# --- compose -----------------------------------------------------------------------------------------------


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]  # type: ignore[no-any-return]


def test_compose_services_and_their_order() -> None:
    services = _services()
    assert set(services) == {"postgres", "migrate", "bot", "generator"}
    postgres = services["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    migrate = services["migrate"]
    assert migrate["command"] == ["imagine", "migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("bot", "generator"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["bot"]["command"] == ["imagine", "serve", "--no-render"]
    assert services["generator"]["command"] == ["python", "-m", "generator.serve"]


def test_generator_scales() -> None:
    generator = _services()["generator"]
    # --scale generator=N: no fixed name, no published host port
    assert "container_name" not in generator and "ports" not in generator
    assert generator["environment"]["IMAGINE_GENERATOR_METRICS_PORT"] == "9100"


def test_every_service_of_ours_uses_the_image_and_dotenv() -> None:
    compose = _compose()
    for name in ("migrate", "bot", "generator"):
        service = compose["services"][name]
        assert service["build"]["context"] == "." and (ROOT / "Dockerfile").exists()
        assert service["env_file"] == [{"path": ".env", "required": False}]
        url = service["environment"]["IMAGINE_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    declared = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared


def test_compose_settings_exist() -> None:
    for name in ("docker-compose.yml", "docker-compose.gpu.yml"):
        text = (ROOT / name).read_text()
        for service_name, service in _compose(name)["services"].items():
            for key in service.get("environment", {}):
                if service_name != "postgres":
                    assert key in SETTINGS_ENV, f"{name}: {service_name} sets unknown {key}"
        for variable in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text):
            assert variable in SETTINGS_ENV or variable in COMPOSE_ONLY, f"{name}: ${{{variable}}}"


def test_gpu_override_reserves_a_gpu_and_builds_cuda(dockerfile: Dockerfile) -> None:
    generator = _compose("docker-compose.gpu.yml")["services"]["generator"]
    (device,) = generator["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    assert generator["build"]["args"]["VARIANT"] == "cuda" and dockerfile.stage("os-cuda")
    assert generator["environment"]["IMAGINE_DEVICE"] == "cuda"


def test_the_image_holds_every_package_and_file_the_project_reads(dockerfile: Dockerfile) -> None:
    """`pip install -e .` in the image finds the same packages as here; migrations find alembic.ini."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {word for copy in dockerfile.stage("build").all("COPY") for word in copy.words()[:-1]}
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", pyproject["project"]["readme"], "alembic.ini", "scripts/bootstrap.sh"} <= copied
