"""kill -9 a real worker while the SMS provider holds its SendSms: the notice gets exactly one SMS.

The stand-in records the message as accepted and holds the answer; the worker is killed while it waits.
Redis hands the unacknowledged send task to a second worker, which finds the message claimed (``sending``)
and does not send it; the reconciler then asks the provider (QuerySendDetails, matching our OutId) and takes
the delivered status over. One SMS at the stand-in, however the work was redelivered.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlmodel import Session, col, select

from backend.auth.models import Role
from backend.config import Settings
from backend.db import utcnow
from backend.notices.sms import contacts
from backend.notices.sms.models import ConsentSource, SmsMessage, SmsStatus
from backend.notices.sms.provider import AliyunSms
from backend.notices.sms.sending import STALE_AFTER, reconcile
from backend.notices.sms.templates import TEMPLATES
from backend.outbox.models import OutboxEvent
from backend.outbox.service import emit
from backend.records.service import bureau_today
from tests.factories import COUNTY_A, make_account, make_instrument, make_operator
from tests.faults.conftest import VISIBILITY_TIMEOUT_S, Stack, wait_for
from tests.support.aliyun_sms_standin import ACCESS_KEY_ID, ACCESS_KEY_SECRET, StandinServer

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

PHONE = "13912345678"
CODES = {t.key: f"SMS_{9000 + i}" for i, t in enumerate(TEMPLATES)}


def test_killed_mid_send_the_notice_gets_one_sms(stack: Stack) -> None:
    from tests.backend.notices.conftest import zone_at_local_hour

    with StandinServer() as standin:
        zone = zone_at_local_hour(10, 16)  # the bureau's day: no quiet hours whenever this runs
        env = {
            "GONGPING_SMS_ENABLED": "true",
            "GONGPING_SMS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "GONGPING_SMS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "GONGPING_SMS_ENDPOINT": standin.endpoint,
            "GONGPING_SMS_SIGN_NAME": "公平计量",
            "GONGPING_SMS_TEMPLATE_CODES": json.dumps(CODES),
            "GONGPING_SMS_TIMEOUT_MS": "60000",
            "GONGPING_TIMEZONE": zone,
        }
        with stack.session() as s:
            staff = make_account(s, Role.staff, COUNTY_A)
            operator = make_operator(s, staff)
            make_account(s, Role.operator, operator_id=operator.id)  # no device: SMS at once
            contacts.set_contact(
                s,
                operator_id=operator.id or 0,
                phone=PHONE,
                consent=True,
                source=ConsentSource.staff,
                actor=staff,
                note="书面同意书",
            )
            instrument = make_instrument(s, operator, verified_on=bureau_today() - timedelta(days=400))
            assert instrument.valid_until is not None
            emit(
                s,
                "instrument.overdue",
                {
                    "instrument_id": instrument.id,
                    "operator_id": operator.id,
                    "valid_until": instrument.valid_until.isoformat(),
                },
                dedupe_key=f"fault-sms:{uuid.uuid4().hex}",
            )
            event = s.exec(select(OutboxEvent).order_by(col(OutboxEvent.id).desc())).first()
            s.commit()
            assert event is not None
            operator_id = operator.id

        def rows() -> list[tuple[str, int]]:
            with stack.session() as s:
                return [
                    (m.status.value, m.attempts)
                    for m in s.exec(select(SmsMessage).where(SmsMessage.operator_id == operator_id)).all()
                ]

        standin.state.hold()
        first = stack.worker(env)
        assert stack.relay_once() >= 1
        wait_for(
            lambda: stack.scalar(
                "SELECT count(*) FROM inbox_notification WHERE event_id = :e AND sms_due_at IS NOT NULL",
                e=event.id,
            ),
            "the notice in the inbox with its SMS time",
            timeout=60,
        )
        stack.celery.send_task("gongping.sms.sweep")
        assert standin.state.arrived.wait(timeout=60), first.output()[-3000:]
        # The provider has the message; the worker waits for its answer. Kill it now.
        first.kill9()
        standin.state.release()
        assert len(standin.state.sent_to(PHONE)) == 1
        assert rows() == [("sending", 1)]

        second = stack.worker(env)
        try:
            # The unacknowledged send task comes back after the visibility timeout; it finds the row claimed.
            time.sleep(VISIBILITY_TIMEOUT_S + 6)
            stack.celery.send_task("gongping.sms.sweep")
            time.sleep(3)
            assert rows() == [("sending", 1)], second.output()[-3000:]
            assert len(standin.state.sent_to(PHONE)) == 1

            settings = Settings(
                sms_enabled=True,
                sms_access_key_id=SecretStr(ACCESS_KEY_ID),
                sms_access_key_secret=SecretStr(ACCESS_KEY_SECRET),
                sms_endpoint=standin.endpoint,
                sms_sign_name="公平计量",
                sms_template_codes=CODES,
            )

            @contextmanager
            def uow() -> Iterator[Session]:
                with stack.session() as s:
                    yield s
                    s.commit()

            # The reconciler (the beat's settle task, run here as of the stale time) asks the provider.
            counts = reconcile(
                AliyunSms(settings), now=utcnow() + STALE_AFTER + timedelta(seconds=5), unit_of_work=uow
            )
            assert counts["found"] == 1, counts
            assert rows() == [(SmsStatus.delivered.value, 1)]
            assert len(standin.state.sent_to(PHONE)) == 1
            [message] = standin.state.sent_to(PHONE)
            with stack.session() as s:
                row = s.exec(select(SmsMessage).where(SmsMessage.operator_id == operator_id)).one()
            assert message.out_id == str(row.id)
        finally:
            second.stop()
