// k6: constant arrival rate against one endpoint, the counterpart of
// `octollm-load http` for generator comparisons.
//
//   k6 run -e TARGET_URL=http://127.0.0.1:18080/ -e RATE=20000 -e DURATION=20s \
//          -e VUS=64 -e MAX_VUS=256 crates/load-gen/k6/constant-rate.js
//
// RATE: iterations (requests) per second; VUS: pre-allocated VUs (like
// --connections); MAX_VUS: the ceiling k6 may grow to (like --max-in-flight).
// When every VU is busy k6 counts dropped_iterations instead of queueing.
import http from 'k6/http';
import { check } from 'k6';

const target = __ENV.TARGET_URL;
if (!target) {
  throw new Error('set TARGET_URL, e.g. -e TARGET_URL=http://127.0.0.1:18080/');
}
const vus = parseInt(__ENV.VUS || '64', 10);

export const options = {
  discardResponseBodies: true,
  scenarios: {
    constant: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '1000', 10),
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: vus,
      maxVUs: parseInt(__ENV.MAX_VUS || String(vus), 10),
    },
  },
  summaryTrendStats: ['p(50)', 'p(90)', 'p(99)', 'max'],
};

export default function () {
  const res = http.get(target);
  check(res, { 'status is 2xx': (r) => r.status >= 200 && r.status < 300 });
}
