"""WhatWut's knowledge-base routes, answered by Wacanda over HTTP (the packages never import each other)."""
