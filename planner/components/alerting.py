"""Where alerts reach a person (concern `alerting`: the catalog's kube-prometheus-stack, with its Alertmanager; OnCall
is concern `incident-manager`, planner/components/incident_manager.py).

Alertmanager's own receivers are the path that must always work: every alert goes to each channel of the cluster
file's `alerting` section (mail, Slack, PagerDuty, a webhook). OnCall is an addition while it is installed: its
Alertmanager integration, created by the oncall-setup Job (config/manifests/oncall/setup.yaml), gets every alert
too, in-cluster (oncall-engine.monitoring.svc:8080, never through the tunnel). The Watchdog, an alert that always
fires, goes to a dead man's switch when `alerting.heartbeat` is set. The secrets are files of the Secret
alertmanager-channels (sensitive variables alerting_*), read by Alertmanager at each notification.
"""

from __future__ import annotations

from typing import Any

from planner.schema import AlertingConfig

CONCERN = "alerting"

# Where the operator mounts a Secret listed in alertmanagerSpec.secrets (prometheus-operator: /etc/alertmanager/secrets/<name>).
CHANNELS_DIR = "/etc/alertmanager/secrets/alertmanager-channels"
# Where the kube-prometheus-stack entry mounts the Secret the oncall-setup Job writes (optional: absent until then).
ONCALL_URL_FILE = "/etc/alertmanager/oncall/url"

PEOPLE, ONCALL, HEARTBEAT, NULL = "people", "oncall", "heartbeat", "null"


def _people_receiver(alerting: AlertingConfig) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": PEOPLE}
    if alerting.email is not None:
        mail = alerting.email
        config: dict[str, Any] = {
            "to": ", ".join(mail.to),
            "from": mail.sender,
            "smarthost": mail.smarthost,
            "require_tls": mail.require_tls,
            "send_resolved": True,
        }
        if mail.username is not None:
            config["auth_username"] = mail.username
            config["auth_password_file"] = f"{CHANNELS_DIR}/smtp-password"
        receiver["email_configs"] = [config]
    if alerting.slack is not None:
        receiver["slack_configs"] = [
            {"api_url_file": f"{CHANNELS_DIR}/slack-url", "channel": alerting.slack.channel, "send_resolved": True}
        ]
    if alerting.pagerduty:
        receiver["pagerduty_configs"] = [{"routing_key_file": f"{CHANNELS_DIR}/pagerduty-key", "send_resolved": True}]
    if alerting.webhook:
        receiver["webhook_configs"] = [{"url_file": f"{CHANNELS_DIR}/webhook-url", "send_resolved": True}]
    return receiver


def alertmanager_config(alerting: AlertingConfig, oncall: bool) -> dict[str, Any]:
    """Alertmanager's route and receivers: the Watchdog to the heartbeat (or nowhere), every other alert to OnCall
    (while installed) and to the people's channels."""
    people = bool(alerting.channels)
    receivers: list[dict[str, Any]] = [{"name": NULL}]
    routes: list[dict[str, Any]] = []
    if alerting.heartbeat:
        receivers.append({"name": HEARTBEAT, "webhook_configs": [{"url_file": f"{CHANNELS_DIR}/heartbeat-url",
                                                                   "send_resolved": False}]})
        # A ping every minute: the dead man's switch pages when they stop.
        routes.append({"receiver": HEARTBEAT, "matchers": ['alertname = "Watchdog"'], "group_wait": "0s",
                       "group_interval": "1m", "repeat_interval": "1m"})
    else:
        routes.append({"receiver": NULL, "matchers": ['alertname = "Watchdog"']})
    if oncall:
        receivers.append({"name": ONCALL, "webhook_configs": [{"url_file": ONCALL_URL_FILE, "send_resolved": True}]})
        routes.append({"receiver": ONCALL, "continue": people})
    if people:
        receivers.append(_people_receiver(alerting))
        routes.append({"receiver": PEOPLE})
    default = PEOPLE if people else ONCALL if oncall else NULL
    route = {"group_by": ["namespace", "alertname"], "group_wait": "30s", "group_interval": "5m",
             "repeat_interval": "12h", "receiver": default, "routes": routes}
    return {"alertmanager": {"config": {"route": route, "receivers": receivers}}}


def warnings(alerting: AlertingConfig, router: bool, oncall: bool) -> list[str]:
    """What every synth says while no person can be reached (the preflight of the alert path)."""
    out: list[str] = []
    if not router:
        out.append("warning: alerting: no Alertmanager is installed (concern alerting): no alert reaches anyone")
        return out
    if not alerting.channels:
        via = (
            "only Grafana OnCall (archived upstream; it pages only users with a notification channel of their own)"
            if oncall
            else "no receiver: every alert is dropped"
        )
        out.append(
            "warning: alerting: no channel is configured (alerting.email, slack, pagerduty or webhook), so alerts "
            f"reach {via}; set one to page a person (docs/observability.md, Alert path)"
        )
    return out
