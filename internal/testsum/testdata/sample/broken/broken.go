package broken

func f() int { return "s" }
