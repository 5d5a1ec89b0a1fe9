"""DNS messages: the record of one, and the answer records decoded for --transactions."""
