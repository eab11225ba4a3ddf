"""Network configuration of the bridge and netfilter (issue: live appliance). Not built yet."""
