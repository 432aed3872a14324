"""Flow runs started by the CLI: heartbeats only where a Prefect server outlives the run."""

from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from inboxflow.flow_runs import cli_flow_runs


def test_local_mode_runs_send_no_heartbeats_to_the_temporary_server():
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30, PREFECT_API_URL: None}):
        with cli_flow_runs():
            assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 30


def test_runs_reported_to_a_prefect_server_keep_their_heartbeats():
    settings = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30, PREFECT_API_URL: "http://127.0.0.1:4200/api"}
    with temporary_settings(settings), cli_flow_runs():
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() == 30
