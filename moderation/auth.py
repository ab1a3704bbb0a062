"""Who may do what in the moderation pipeline.

- Reading a slice's analysis (transcript, screen text, flags) is a staff read of personal data:
  moderators and admins, with a reason that goes to the access log.
- Operating the pipeline (failed slices, retries) and installing policies: admins only.
"""

from __future__ import annotations

from accounts.auth import AdminUser, StaffUser

TranscriptReader = StaffUser
PipelineAdmin = AdminUser
PolicyAdmin = AdminUser
PolicyReader = StaffUser
