export { type AppOptions, buildApp } from './app.js';
export { HotCache, type HotCacheSettings, type HotCacheStats, hotCacheOf } from './hot.js';
export { createLogger, logLevelOf, redactUrl } from './log.js';
export { Metrics, type MetricsOptions } from './plugins/metrics.js';
export { Reloader } from './reload.js';
export { type ServeOptions, serve } from './serve.js';
export { DEFAULTS, type ServeSettings, settingsOf } from './settings.js';
export { prepareSocket } from './socket.js';
export { type Held, type Tree, Trees } from './trees.js';
