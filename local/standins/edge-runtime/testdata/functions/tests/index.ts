// Test fixture: a `tests` folder is never served as a function, even with an index.ts.
throw new Error("tests/index.ts must never be loaded as a function");
