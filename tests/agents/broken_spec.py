"""An agent file whose declaration is invalid: one tier only."""

from tierflow import Agent, Price, Tier

agent = Agent(
    name="broken",
    instructions="x",
    tiers=(
        Tier(name="fast", model="openai:gpt-4.1", price=Price(input=1, cached_input=1, output=1)),
    ),
)
