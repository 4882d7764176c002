"""What tests share beyond fixtures: the app under AppTest, a local app server and browser helpers, HTTP serving,
fault injection. Nothing in ``engine/`` imports it."""
