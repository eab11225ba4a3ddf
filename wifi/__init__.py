"""Wi-Fi (hostapd) configuration for the two SSIDs. Not built yet."""
