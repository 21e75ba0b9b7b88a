"""A full phone batch through the API (real account) against a local HLR provider server."""

from __future__ import annotations

from tests.api.helpers import Api
from tests.labs.phone_providers import NumberBehaviour, phone_provider_lab
from tests.support.server import settings_env


def test_phone_batch_reaches_done_with_provider_fields(make_server) -> None:  # type: ignore[no-untyped-def]
    behaviours = {
        "+447400123456": NumberBehaviour(
            live_status="LIVE",
            is_ported="YES",
            current_network=("Vodafone UK", "23415"),
            original_network=("EE", "23430"),
        ),
        "+447400123457": NumberBehaviour(live_status="DEAD", current_network=None),
        "+447400123458": NumberBehaviour(
            live_status="ABSENT_SUBSCRIBER", rate_limit_times=1, retry_after="1"
        ),
    }
    with phone_provider_lab(behaviours) as lab:
        server = make_server(**settings_env(lab.settings_overrides("hlrlookup")))
        key, _ = server.create_account(sandbox=False, phone_credits=100)
        api = Api(server.base_url, key)
        content = "+44 7400 123456\n07400123457\n+447400123458\n+12005550100\nnot a phone\n"
        batch_uuid = api.run(content, type="phone", country="GB", remove_wrong_phone_format="false")
        results = api.export_json(batch_uuid, include_statistics="false")

        live = results["+44 7400 123456"]
        assert (live["valid"], live["status"], live["is_ported"]) == (True, "live", True)
        assert (live["current_network_mcc"], live["current_network_mnc"]) == ("234", "15")
        assert live["operator"] == "Vodafone UK"
        dead = results["07400123457"]
        assert (dead["wrong"], dead["status"]) == (True, "dead")
        absent = results["+447400123458"]
        assert (absent["unknown"], absent["status"]) == (True, "absent_subscriber")
        assert results["+12005550100"]["wrong"] is True  # unallocated range: decided offline
        assert results["not a phone"]["is_syntax_error"] is True
        # Numbers that failed offline analysis were never sent to the paid provider.
        sent = set(lab.received["hlrlookup"])
        assert "+12005550100" not in sent
        assert {"+447400123456", "+447400123457", "+447400123458"} <= sent
        log = (server.data_dir / "server.log").read_text()
        for secret in lab.secrets():
            assert secret not in log
            assert secret not in str(results)
