//! Integration tests of the red team.
