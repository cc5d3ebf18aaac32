//! Git write-back: the fetch → re-apply → commit → push loop that never loses a race.
