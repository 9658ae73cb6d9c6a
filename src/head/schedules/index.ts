export { ScheduleService } from './service.js';
export { ScheduleTicker } from './ticker.js';
export { planDue, MISSED_COUNT_CAP, type DuePlan } from './plan.js';
export { runJobId, runMetadata } from './fire.js';
