#!/usr/bin/env node
// Entry point of the `stowage` command: runs the compiled CLI (built by `npm ci` through the `prepare` script).
import '../dist/cli/main.js';
