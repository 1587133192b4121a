import { formatSelfTimes } from '/work/main/bench/lib/profile.ts';
console.log(formatSelfTimes(process.argv[2]!, '/work/main', Number(process.argv[3] ?? 40)));
