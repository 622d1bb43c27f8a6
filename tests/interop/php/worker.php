<?php
// php worker.php PORT FUNC MODE [MAXJOBS]
// MODE: echo (return the workload), progress (status, data, warning, then complete),
//       exception, fail, slow (sleep 30 s: to be killed mid-job), upper,
//       handles (print "handle workload" for each job).
[$_, $port, $func, $mode] = $argv;
$max = (int)($argv[4] ?? 0);
$w = new GearmanWorker();
$w->addServer('127.0.0.1', (int)$port);
$w->addFunction($func, function (GearmanJob $job) use ($mode) {
    switch ($mode) {
        case 'progress':
            $job->sendStatus(1, 3);
            $job->sendData('chunk');
            $job->sendWarning('careful');
            $job->sendStatus(3, 3);
            return 'done:' . $job->workload();
        case 'exception':
            $job->sendException('boom');
            $job->setReturn(GEARMAN_WORK_EXCEPTION);
            return null;
        case 'fail':
            $job->sendFail();
            $job->setReturn(GEARMAN_WORK_FAIL);
            return null;
        case 'slow':
            file_put_contents('php://stderr', "started\n");
            sleep(30);
            return 'slow';
        case 'upper':
            return strtoupper($job->workload());
        case 'handles':
            echo $job->handle(), ' ', $job->workload(), "\n";
            return '';
        default:
            return $job->workload();
    }
});
$n = 0;
while ($w->work()) {
    if ($max && ++$n >= $max) break;
}
