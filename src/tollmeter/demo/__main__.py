"""`make demo`: tenants call a local fake provider through the real SDKs, metered and capped.

No server, no keys, no internet: `FakeProvider` answers on 127.0.0.1 like the OpenAI and
Anthropic APIs, and the real `openai` and `anthropic` clients talk to it. Every call is metered,
priced and attributed to the tenant in scope; tenants have plans (per seat, flat, per resolved
ticket, usage-based) and different spend limits, and one on the free plan runs into its limit:
the app catches `LimitExceededException` and answers "upgrade your plan". At the end come
`tollmeter report` (usage), `tollmeter margin` (who makes money) and `tollmeter leaks` (who
loses it) on the demo's embedded store.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone

import anthropic
import openai

from tollmeter import LimitExceededException, LLMEvent, Meter, MeterConfig, Plan, cli
from tollmeter.demo.fake_provider import FakeProvider

SUPPORT_PROMPT = "You are the support assistant of a project-management SaaS. " * 40


def show(event: LLMEvent) -> None:
    u = event.usage
    kind = "stream" if event.stream else "call  "
    ttft = f"  first token {event.time_to_first_token_ms:5.1f} ms" if event.time_to_first_token_ms else ""
    cached = f" ({u.cache_read_tokens} cached)" if u.cache_read_tokens else ""
    cost = f"${event.cost_usd:.6f}" if event.cost_usd is not None else "unpriced"
    print(f"  {event.tenant_id:<8} {kind} {event.provider:<9} {event.endpoint:<16} {event.model:<22}"
          f" in {u.input_tokens:>5}{cached:<14} out {u.output_tokens:>4}  {cost:>10}{ttft}")


def support_bot(meter: Meter, client: openai.OpenAI) -> None:
    """acme: a support bot on OpenAI chat completions, plain and streamed."""
    with meter.for_tenant("acme", agent_id="support-bot", tags={"plan": "pro"}):
        for question in ("How do I archive a project?", "Can I export my board to CSV?"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "system", "content": SUPPORT_PROMPT},
                                               {"role": "user", "content": question}])
        stream = client.chat.completions.create(
            model="gpt-4o-mini", stream=True,
            messages=[{"role": "user", "content": "Write release notes for our sprint."}])
        for _ in stream:
            pass


def analyst(meter: Meter, client: anthropic.Anthropic) -> None:
    """globex: an analyst on Anthropic, with a cached system prompt and a streamed answer."""
    system = [{"type": "text", "text": SUPPORT_PROMPT, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    with meter.for_tenant("globex", run_id="quarterly-report", tags={"plan": "enterprise"}):
        for question in ("Summarise Q3 churn.", "Which accounts grew fastest?"):
            client.messages.create(model="claude-sonnet-4-6", max_tokens=512, system=system,
                                   messages=[{"role": "user", "content": question}])
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=512, system=system,
                                    messages=[{"role": "user", "content": "Draft the board memo."}]) as stream:
            stream.get_final_message()


def research_team(meter: Meter, fp: FakeProvider) -> None:
    """umbrella: a research team on Gemini and on Claude through AWS Bedrock."""
    try:
        import boto3
        from google import genai
    except ImportError:  # the demo's other tenants run without them
        print("  (google-genai or boto3 not installed: skipping the Gemini and Bedrock calls)")
        return
    gemini = genai.Client(api_key="fake-key", http_options={"base_url": fp.gemini_base_url})
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=fp.bedrock_endpoint_url,
                           aws_access_key_id="fake", aws_secret_access_key="fake")
    question = [{"role": "user", "content": [{"text": "Which trials report on compound 7?"}]}]
    with meter.for_tenant("umbrella", agent_id="researcher"):
        gemini.models.generate_content(model="gemini-2.5-flash", contents="Summarise the latest trial results.")
        for _ in gemini.models.generate_content_stream(model="gemini-2.5-pro", contents="Draft a literature review."):
            pass
        bedrock.converse(modelId="us.anthropic.claude-3-5-sonnet-20241022-v2:0", messages=question,
                         inferenceConfig={"maxTokens": 400})
        stream = bedrock.converse_stream(modelId="amazon.nova-lite-v1:0", messages=question)
        for _ in stream["stream"]:
            pass


def free_plan_chat(meter: Meter, client: openai.OpenAI) -> None:
    """hooli: a free-plan tenant with a $0.002 daily limit chats until it is stopped."""
    with meter.for_tenant("hooli", agent_id="chat"):
        for turn in range(1, 30):
            try:
                client.chat.completions.create(
                    model="gpt-4o", max_tokens=60,
                    messages=[{"role": "user", "content": f"Question {turn}: tell me about our roadmap."}])
            except LimitExceededException as exc:
                meter.flush()  # show the calls before the refusal
                print(f"\n  hooli    refused before sending: {exc}")
                print("  app ->   \"You have used today's AI allowance of the free plan: upgrade your plan.\"\n")
                return


async def async_agents(meter: Meter, fp: FakeProvider) -> None:
    """initech: concurrent async agents working tickets, paid per resolved ticket. Each ticket
    is a run: researched on OpenAI, answered on Anthropic, then resolved (or escalated)."""
    oai = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="fake-key")
    ant = anthropic.AsyncAnthropic(base_url=fp.anthropic_base_url, api_key="fake-key")

    async def ticket(n: int) -> None:
        async with meter.run(f"ticket-{4710 + n}", tenant="initech", agent="support-bot") as run:
            await oai.responses.create(model="gpt-4.1-mini", input=f"Research ticket number {n}")
            stream = await ant.messages.create(model="claude-haiku-4-5", max_tokens=256, stream=True,
                                               messages=[{"role": "user", "content": f"Answer ticket {n}"}])
            async for _ in stream:
                pass
            run.resolve("escalated" if n == 2 else "resolved")

    await asyncio.gather(*(ticket(n) for n in range(4)))


def customers(meter: Meter) -> None:
    """What each tenant pays, from the 1st of the month: the revenue side of the margin."""
    first = datetime.now(timezone.utc).date().replace(day=1)
    meter.upsert_customer("acme", name="Acme Corp", seats=12, effective_from=first,
                          plan=Plan("pro", "per_seat", seat_revenue_usd="25"))
    meter.upsert_customer("globex", name="Globex", effective_from=first,
                          plan={"name": "enterprise", "pricing_model": "flat", "base_revenue_usd": "1500"})
    meter.upsert_customer("initech", name="Initech", effective_from=first,
                          plan={"name": "tickets", "pricing_model": "per_resolution", "unit_revenue_usd": "0.50"})
    meter.upsert_customer("umbrella", name="Umbrella", effective_from=first,
                          plan={"name": "usage", "pricing_model": "usage_based", "markup": "0.4"})
    meter.upsert_customer("hooli", name="Hooli", effective_from=first,
                          plan={"name": "free", "pricing_model": "flat", "base_revenue_usd": "0"})
    print("plans: acme $25/seat x 12, globex $1,500/month, initech $0.50 per resolved ticket,\n"
          "       umbrella cost + 40%, hooli free\n")


def hooli_history(meter: Meter) -> None:
    """hooli's chats of the days before today, imported from the app's logs (a backfill)."""
    today = datetime.now(timezone.utc).date()
    for back in range(3, 0, -1):
        day = today - timedelta(days=back)
        if day.month != today.month:
            continue
        for turn in range(40):
            meter.track_manually(provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300,
                                 tenant_id="hooli", agent_id="chat", idempotency_key=f"hooli-log-{day}-{turn}",
                                 timestamp=datetime(day.year, day.month, day.day, 9, turn, tzinfo=timezone.utc))


def main() -> int:
    events: list[LLMEvent] = []

    def on_event(event: LLMEvent) -> None:
        events.append(event)
        show(event)

    with tempfile.TemporaryDirectory() as tmp, FakeProvider(latency=0.01, chunk_delay=0.002) as fp:
        db = os.path.join(tmp, "tollmeter.db")
        # The fake provider listens on 127.0.0.1; say which real API each base URL stands for.
        config = MeterConfig(store=db, on_event=on_event, flush_interval=0.2, provider_overrides={
            fp.openai_base_url: "openai", fp.anthropic_base_url: "anthropic", fp.gemini_base_url: "google"})
        with Meter(config) as meter:
            print(f"tollmeter demo: fake provider on {fp.openai_base_url}; patched {meter.patch_all()}")
            meter.set_limit("acme", 50, frequency="per_month")      # pro plan
            meter.set_limit("globex", 500, frequency="per_month")   # enterprise plan
            meter.set_limit("globex", 40, frequency="per_day")
            meter.set_default_limit(5, frequency="per_month")       # everyone else
            meter.set_limit("hooli", "0.002", frequency="per_day")  # free plan
            print("limits: acme $50/month, globex $500/month and $40/day, hooli $0.002/day, others $5/month")
            customers(meter)
            hooli_history(meter)
            print("  tenant   kind   provider  endpoint         model                  tokens in / out      cost")
            support_bot(meter, openai.OpenAI(base_url=fp.openai_base_url, api_key="fake-key"))
            analyst(meter, anthropic.Anthropic(base_url=fp.anthropic_base_url, api_key="fake-key"))
            asyncio.run(async_agents(meter, fp))
            research_team(meter, fp)
            free_plan_chat(meter, openai.OpenAI(base_url=fp.openai_base_url, api_key="fake-key"))
            meter.flush()
            stats = meter.stats()
            print(f"{stats['recorded']} events recorded, {stats['dropped']} dropped, {stats['faults']} faults, "
                  f"{stats['unpriced']} unpriced\n")
            for status in meter.spend("hooli"):
                print(f"hooli: spent ${status.spent_usd:.6f} of ${status.limit_usd} {status.frequency}, "
                      f"resets {status.resets_at:%Y-%m-%d %H:%M} UTC\n")
        print(f"$ tollmeter report --db {db}\n")
        code = cli.main(["report", "--db", db])
        print(f"\n$ tollmeter margin --db {db}\n")
        code = code or cli.main(["margin", "--db", db])
        print(f"\n$ tollmeter leaks --db {db}\n")
        return code or cli.main(["leaks", "--db", db])


if __name__ == "__main__":
    sys.exit(main())
