from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.settings import SettingsError, load_settings


def test_defaults_need_no_configuration() -> None:
    settings = load_settings({})
    assert settings.database_url is None
    assert settings.sqlite_path == Path("data") / "app.sqlite3"
    assert (settings.db_pool_size, settings.db_max_overflow) == (5, 5)
    assert settings.memory_limit_mib == {{ cookiecutter.memory_limit_mib }}
    assert settings.is_production


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql+psycopg2://app:pw@db:5432/app",
            "DATABASE_REPLICA_URL": "postgresql://app:pw@replica:5432/app",
            "DB_POOL_SIZE": "3",
            "DB_POOL_TIMEOUT": "2.5",
            "APP_ENV": "Development",
            "SHOW_SYSTEM_PAGE": "yes",
        }
    )
    assert settings.db_pool_size == 3
    assert settings.db_pool_timeout_s == 2.5
    assert settings.environment == "development"
    assert settings.show_system_page is True


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DB_POOL_SIZE", "abc", "DB_POOL_SIZE='abc' must be a whole number of at least 1"),
        ("DB_POOL_SIZE", "0", "DB_POOL_SIZE='0' must be a whole number of at least 1"),
        ("DB_POOL_TIMEOUT", "soon", "DB_POOL_TIMEOUT='soon' must be a number between"),
        ("APP_ENV", "staging", "APP_ENV='staging' must be one of production, development"),
        ("SHOW_SYSTEM_PAGE", "maybe", "SHOW_SYSTEM_PAGE='maybe' must be true or false"),
        ("DATABASE_URL", "mysql://u:p@h/db", "DATABASE_URL uses 'mysql'; supported:"),
        ("DATABASE_URL", "not a url", "DATABASE_URL is not a database URL"),
        ("DATABASE_URL", "sqlite:///app.db", "leave it unset for the embedded SQLite file in DATA_DIR"),
        ("SEED_DEMO_DATA", "maybe", "SEED_DEMO_DATA='maybe' must be true or false"),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({name: value})
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"DB_POOL_SIZE": "x", "CACHE_TTL_S": "-1"})
    assert "DB_POOL_SIZE" in str(error.value)
    assert "CACHE_TTL_S" in str(error.value)


def test_errors_never_echo_passwords() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"DATABASE_URL": "mysql://user:hunter2@db/app"})
    assert "hunter2" not in str(error.value)


def test_replica_requires_primary() -> None:
    with pytest.raises(SettingsError, match="DATABASE_REPLICA_URL is set but DATABASE_URL is not"):
        load_settings({"DATABASE_REPLICA_URL": "postgresql://u:p@replica/app"})


def test_environment_overrides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    import {{ cookiecutter.package_name }}.settings as settings_module

    monkeypatch.setattr(settings_module, "_secrets", lambda: {"DB_POOL_SIZE": 2, "DB_MAX_OVERFLOW": 1})
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = load_settings()
    assert settings.db_pool_size == 7  # environment wins
    assert settings.db_max_overflow == 1  # secrets fill the rest
