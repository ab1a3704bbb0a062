"""The access log: an append-only, hash-chained record of every staff read of personal data.

Privacy promise 3 (who read what, when, why, about whom; tamper-evident) and the log part of
promise 5 (``detach_person`` removes the link to a cancelled person, the chain still verifies).
Use ``storage.access_log.service.record_access`` from the domain services that show personal
data to staff.
"""
