<?php
// php submit.php PORT TAG COUNT [PAUSE_MS [PAD_BYTES]]: COUNT background jobs of function
// "work" with workloads "TAG-i" (then a space and PAD_BYTES bytes of padding, if given),
// with PAUSE_MS milliseconds between them.
// Prints a line per job as soon as the server has answered, with the Unix times the
// submission started and ended:
//   ok TAG-i START END                    acknowledged (JOB_CREATED)
//   refused TAG-i START END CODE ERROR    not acknowledged (server down, QUEUE_ERROR, ...)
[$_, $port, $tag, $count] = $argv;
$pause = (int)($argv[4] ?? 0);
$pad = isset($argv[5]) ? ' ' . str_repeat('x', (int)$argv[5]) : '';
error_reporting(E_ERROR);  // a refused job is expected while its server is down
$c = new GearmanClient();
$c->addServer('127.0.0.1', (int)$port, false);
$c->setTimeout(5000);
for ($i = 0; $i < (int)$count; $i++) {
    $data = "$tag-$i";
    $start = microtime(true);
    $c->doBackground('work', $data . $pad);
    $end = microtime(true);
    if ($c->returnCode() == GEARMAN_SUCCESS) {
        printf("ok %s %.6f %.6f\n", $data, $start, $end);
    } else {
        printf("refused %s %.6f %.6f %d %s\n", $data, $start, $end, $c->returnCode(), $c->error());
        usleep(100000);
    }
    fflush(STDOUT);
    usleep($pause * 1000);
}
