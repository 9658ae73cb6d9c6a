// A Node.js job: count words in the bundled text and print the most frequent ones.
const fs = require('node:fs');

const text = fs.readFileSync(new URL('./text.txt', `file://${__dirname}/`), 'utf8');
const counts = new Map();
for (const word of text.toLowerCase().match(/[a-z']+/g) ?? []) counts.set(word, (counts.get(word) ?? 0) + 1);
const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
console.log(`raysub job ${process.env.RAYSUB_JOB_ID} on Node ${process.version}`);
for (const [word, n] of top) console.log(`${String(n).padStart(4)}  ${word}`);
