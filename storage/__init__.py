"""The shared kit: database engine and sessions, migrations, media store, field encryption,
background-job dispatch, retention and the access log. Knows no domain."""
