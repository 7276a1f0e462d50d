"""Grafana OnCall (concern `incident-manager`), an addition to Alertmanager's own receivers while installed
(planner/components/alerting.py): its mail relay, and the people its default escalation chain notifies (the
oncall-setup Job of config/manifests/oncall/setup.yaml reads them as ((oncall_people)))."""

from __future__ import annotations

from typing import Any

from planner.schema import AlertingConfig, HelixConfig

CONCERN = "incident-manager"


# Alertmanager speaks implicit TLS (SMTPS) to a relay on this port, and STARTTLS elsewhere (notify/email at v0.34).
IMPLICIT_TLS_PORT = "465"


def _chart_bool(value: bool) -> str:
    """A boolean for the oncall chart's smtp.tls and smtp.ssl: the chart reads them through `default` (tls defaults
    to true), which swallows a YAML false, so false is given as the string the engine reads as false."""
    return "True" if value else "False"


def oncall_values(alerting: AlertingConfig) -> dict[str, Any]:
    """OnCall's mail (the chart's oncall.smtp; the password is the Secret oncall-smtp, key smtp-password, which
    the chart's engine reads when it exists): the same relay as Alertmanager's, spoken to the same way, or none."""
    mail = alerting.email
    if mail is None:
        return {"oncall": {"smtp": {"enabled": False}}}
    host, _, port = mail.smarthost.rpartition(":")
    implicit = port == IMPLICIT_TLS_PORT
    return {
        "oncall": {
            "smtp": {
                "enabled": True,
                "host": host,
                "port": port,
                "username": mail.username or "",
                # EMAIL_USE_TLS (STARTTLS) and EMAIL_USE_SSL (implicit TLS): the chart refuses both at once.
                "tls": _chart_bool(mail.require_tls and not implicit),
                "ssl": _chart_bool(implicit),
                "fromEmail": mail.sender,
            }
        }
    }


def oncall_people(cfg: HelixConfig) -> list[str]:
    """The Grafana users OnCall's default escalation chain notifies."""
    alerting = cfg.alerting
    if alerting.oncall_people is not None:
        return list(alerting.oncall_people)
    return list(alerting.email.to) if alerting.email is not None else [cfg.acme_email]


def placeholders(cfg: HelixConfig) -> dict[str, str]:
    return {"oncall_people": ",".join(oncall_people(cfg))}
