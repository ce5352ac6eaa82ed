package discordbot

// IsSnowflake reports whether s is a Discord id (a "snowflake"): decimal digits, at most 20.
func IsSnowflake(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
