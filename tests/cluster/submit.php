<?php
// php submit.php PORT TAG COUNT: COUNT background jobs "TAG-i" of function "work".
// Prints the workload of each job the server acknowledged (JOB_CREATED), one a
// line, as soon as it is acknowledged; jobs refused (server down) are skipped.
[$_, $port, $tag, $count] = $argv;
error_reporting(E_ERROR);  // a refused job is expected while its server is down
$c = new GearmanClient();
$c->addServer('127.0.0.1', (int)$port, false);
$c->setTimeout(5000);
for ($i = 0; $i < (int)$count; $i++) {
    $data = "$tag-$i";
    $c->doBackground('work', $data);
    if ($c->returnCode() == GEARMAN_SUCCESS) {
        echo $data, "\n";
        fflush(STDOUT);
    } else {
        usleep(100000);
    }
}
