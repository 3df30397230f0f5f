"""Read queries shared by the REST API and the dashboard: the vocabulary of
run states and the runs overview. Plain SQLAlchemy over a session; nothing
here knows about requests, views or the API's JSON."""
