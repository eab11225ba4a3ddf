from __future__ import annotations

import asyncio
import random

import pytest

from cloudlink.daemon import Agent, AgentConfig, backoff_delay
from cloudlink.fake import FakeCloud
from cloudlink.protocol import LinkState
from cloudlink.queue import DetectionQueue
from cloudlink.state import AgentState
from tests.unit.cloudlink.helpers import det


@pytest.fixture
def agent_parts(tmp_path):
    st = AgentState(tmp_path, ("https://cloud.example:8443",), "dev-0123456789abcdef", "PIN", "")
    q = DetectionQueue(st.queue_path)
    yield st, q
    q.close()


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(1)
    ds = [backoff_delay(n, 1.0, 60.0, rng) for n in range(1, 12)]
    assert 0.5 <= ds[0] <= 1.0 and 8 <= ds[4] <= 16 and all(30 <= d <= 60 for d in ds[7:])
    assert len({round(backoff_delay(5, 1.0, 60.0, rng), 6) for _ in range(20)}) > 10   # not lockstep


def test_lost_answers_resend_without_duplicates(agent_parts):
    st, q = agent_parts
    q.enqueue([det(i, stars=i % 4) for i in range(25)])
    cloud = FakeCloud(lose_next_answers=2)
    agent = Agent(st, cloud, q, AgentConfig(batch_size=10))

    async def go():
        results = [await agent.upload_once() for _ in range(6)]
        return results
    assert asyncio.run(go()) == [None, None, 10, 10, 5, 0]
    assert sorted(cloud.stored) == sorted(det(i).key for i in range(25))
    # the same batch was sent three times: stored once, then twice a duplicate
    assert cloud.duplicates == 20 and agent.status.cloud_duplicates == 10 and q.stats().depth == 0
    assert all(d.device_id == st.device_id for d in cloud.stored.values())
    assert [d.stars for d in list(cloud.stored.values())[:10]] == [3] * 6 + [2] * 4   # worst first


def test_heartbeat_reports_queue_and_errors(agent_parts):
    st, q = agent_parts
    q.enqueue([det(1)])
    cloud = FakeCloud(up=False)
    agent = Agent(st, cloud, q, AgentConfig(firmware_version="1.2.3"), uptime=lambda: 42)

    async def go():
        assert not await agent.heartbeat_once()
        cloud.up = True
        assert await agent.heartbeat_once()
    asyncio.run(go())
    hb = cloud.heartbeats[0]
    assert hb.firmware_version == "1.2.3" and hb.uptime_s == 42 and dict(hb.counters)["queue.depth"] == 1
    assert hb.link_state == LinkState.DEGRADED and "fake cloud is down" in hb.last_error   # down since the last one
    assert hb.inspected_share is None and hb.definitions_version is None   # unknown, not invented


def test_run_backs_off_while_down_then_delivers(agent_parts):
    st, q = agent_parts
    cloud = FakeCloud(up=False)
    cfg = AgentConfig(heartbeat_interval_s=0.05, poll_interval_s=0.01, backoff_base_s=0.01, backoff_max_s=0.05)
    agent = Agent(st, cloud, q, cfg)

    async def go():
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        q.enqueue([det(i) for i in range(5)])
        await asyncio.sleep(0.3)
        down_calls = cloud.calls
        cloud.up = True
        for _ in range(100):
            if len(cloud.stored) == 5:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return down_calls
    down_calls = asyncio.run(go())
    assert len(cloud.stored) == 5 and agent.status.upload_failures >= 2
    assert down_calls < 60          # backed off: not a busy loop against a dead cloud
    assert (st.folder / "status.json").exists()


def test_config_validated():
    with pytest.raises(ValueError):
        AgentConfig(batch_size=0)
    with pytest.raises(ValueError):
        AgentConfig(backoff_base_s=10, backoff_max_s=1)


def test_a_crashed_task_stops_the_agent_with_its_error(agent_parts):
    st, q = agent_parts

    class Broken(FakeCloud):
        async def heartbeat(self, hb):
            raise RuntimeError("bug in the heartbeat path")
    agent = Agent(st, Broken(), q, AgentConfig(poll_interval_s=0.01))

    async def go():
        await asyncio.wait_for(agent.run(asyncio.Event()), 5)
    with pytest.raises(RuntimeError, match="bug in the heartbeat path"):
        asyncio.run(go())


def test_scheduled_definitions_checks_and_the_version_in_heartbeats(agent_parts):
    st, q = agent_parts

    class Port:
        def __init__(self):
            self.calls, self.version = 0, None

        def current_version(self):
            return self.version

        async def check_now(self):
            self.calls += 1
            self.version = "2026.11.22.1"
            return True, "updated: none -> 2026.11.22.1"
    port, cloud = Port(), FakeCloud()
    agent = Agent(st, cloud, q, AgentConfig(definitions_interval_s=0.05, heartbeat_interval_s=0.05,
                                            poll_interval_s=0.05), definitions=port)

    async def go():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.6, stop.set)
        await agent.run(stop)
    asyncio.run(go())
    assert port.calls >= 3 and agent.status.definitions_result.startswith("updated")
    versions = [hb.definitions_version for hb in cloud.heartbeats]
    assert versions[0] is None and versions[-1] == "2026.11.22.1"
