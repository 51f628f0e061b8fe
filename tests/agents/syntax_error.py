from tierflow import Agent

agent = Agent(  # unclosed
