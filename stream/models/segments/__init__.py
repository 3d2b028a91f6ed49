"""Segments: from profile attributes (:mod:`.profile`) or, without them, from behaviour (:mod:`.behaviour`)."""

from stream.models.segments.profile import OTHER, ProfileSegmenter, age_band

__all__ = ["OTHER", "ProfileSegmenter", "age_band"]
