// Test fixture: a function whose module throws while loading, so its worker cannot boot.
throw new Error("broken on purpose");
