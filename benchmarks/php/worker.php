<?php
// php worker.php PORT [MAXJOBS]: echoes the workload of "bench" jobs; exits after MAXJOBS (0: never).
$port = (int)$argv[1]; $max = (int)($argv[2] ?? 0);
$w = new GearmanWorker();
$w->addServer('127.0.0.1', $port);
$w->addFunction('bench', function (GearmanJob $job) { return $job->workload(); });
$n = 0;
while ($w->work()) { if ($max && ++$n >= $max) break; }
